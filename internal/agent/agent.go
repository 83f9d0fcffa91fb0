// Package agent is vigil's runtime: it checks privileges, prepares the
// kernel, starts the probes, owns the process cache and the event bus, runs
// both rule engines and alert delivery, serves HTTP and handles signals.
// Every CLI verb is a thin client: Open with the Options it needs,
// subscribe to the bus, then Main with what it prints.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/event/derive"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/probe/l7"
	"github.com/vigilproject/vigil/internal/proc"
	"github.com/vigilproject/vigil/internal/rules"
	"github.com/vigilproject/vigil/internal/server"
)

// Agent is a set of running probes with their shared context.
type Agent struct {
	Cfg      *config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	Bus      *event.Bus
	Procs    *proc.Cache
	// Derivers turn probe events into higher-level kinds while consumed.
	Derivers *derive.Runner
	// HTTP is the HTTP deriver and its RED metrics; nil unless the l7
	// probe runs and l7.http.enabled.
	HTTP *httpflow.Flow

	probes  []probe.Probe
	names   []string
	stats   io.Closer
	started time.Duration

	// Parts of the runtime a verb asked for with Open.
	opts        Options
	er          *eventRules
	srv         *server.Server
	metricRules *rules.Engine
}

// New prepares an agent for the given probes (all enabled ones when nil).
func New(cfg *config.Config, log *slog.Logger, only []string) (*Agent, error) {
	names := only
	if names == nil {
		names = cfg.EnabledProbes()
	}
	a := &Agent{
		Cfg:      cfg,
		Log:      log,
		Registry: prometheus.NewRegistry(),
		Bus:      event.NewBus(),
		Procs:    proc.NewCache(cfg.ProcessCache.MaxEntries, proc.NewCgroups("/sys/fs/cgroup", 4096)),
	}
	for _, n := range names {
		spec, ok := probe.Lookup(n)
		if !ok {
			return nil, fmt.Errorf("unknown probe %q", n)
		}
		p, err := spec.New(cfg.ProbeConfigs[n])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		a.probes = append(a.probes, p)
		a.names = append(a.names, n)
	}
	a.Registry.MustRegister(
		versioncollector.NewCollector("vigil"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.Folded,
		metrics.SelfCollector{Objects: a.Objects},
	)
	var extra []derive.Spec
	if cfg.L7.HTTP.Enabled && slices.Contains(a.names, l7.Name) {
		a.HTTP = httpflow.New(cfg.L7.HTTP, cfg.Metrics.LabelLimit)
		extra = append(extra, a.HTTP.Spec())
		a.Registry.MustRegister(a.HTTP.Collectors()...)
	}
	a.Derivers = derive.NewRunner(a.Bus, log, extra...)
	a.Registry.MustRegister(a.Bus.Collectors()...)
	a.Registry.MustRegister(a.Derivers.Collectors()...)
	a.Registry.MustRegister(a.Procs.Collectors()...)
	return a, nil
}

// Start checks privileges, mounts tracefs, seeds the process cache and
// attaches every probe. On error nothing stays attached.
func (a *Agent) Start() error {
	t0 := time.Now()
	if err := kernel.CheckPrivileges(); err != nil {
		return err
	}
	kernel.RaiseMemlock()
	if err := kernel.EnsureTracefs(); err != nil {
		a.Log.Warn("tracefs unavailable: programs on classic tracepoints will fall back or be skipped", "err", err)
	}
	if a.Cfg.Kernel.BPFStats {
		if c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
			a.Log.Warn("BPF run-time stats unavailable", "err", err)
		} else {
			a.stats = c
		}
	}
	env := &probe.Env{
		Log:           a.Log,
		Registerer:    a.Registry,
		Bus:           a.Bus,
		Procs:         a.Procs,
		DisabledHooks: a.Cfg.DisabledHooks(),
		LabelLimit:    a.Cfg.Metrics.LabelLimit,
	}
	for i, p := range a.probes {
		env.Log = a.Log.With("probe", a.names[i])
		if err := p.Start(env); err != nil {
			for _, q := range a.probes[:i] {
				_ = q.Close()
			}
			a.closeStats()
			return err
		}
		for _, st := range p.Object().Status() {
			if st.Attached {
				a.Log.Debug("program attached", "probe", st.Probe, "program", st.Name, "hook", st.Hook, "target", st.Target)
			} else {
				a.Log.Warn("optional program not attached", "probe", st.Probe, "program", st.Name, "tried", st.Tried)
			}
		}
	}
	// Scan after attaching, so no process started in between is missed.
	if err := a.Procs.Scan("/proc"); err != nil {
		a.Log.Warn("initial /proc scan incomplete", "err", err)
	}
	a.started = time.Since(t0)
	return nil
}

// rescanEvery refreshes the process cache from /proc, which also retires
// processes whose exit event was lost.
const rescanEvery = 5 * time.Minute

// StartupDuration is how long Start took to attach everything.
func (a *Agent) StartupDuration() time.Duration { return a.started }

// Probe returns the named running probe, for verbs that read its maps
// (`vigil top`).
func (a *Agent) Probe(name string) (probe.Probe, bool) {
	for i, n := range a.names {
		if n == name {
			return a.probes[i], true
		}
	}
	return nil, false
}

// Names lists the agent's probes.
func (a *Agent) Names() []string { return a.names }

// Run runs every probe until ctx is done or one fails.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(a.probes))
	for i, p := range a.probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.Derivers.Run(ctx)
	}()
	if a.HTTP != nil && (a.opts.Listen || a.opts.Alerting) {
		// Metrics are served or fed to the rule engine: they consume http
		// events, which keeps the deriver running.
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.HTTP.RunMetrics(ctx, a.Bus)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(rescanEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := a.Procs.Scan("/proc"); err != nil {
					a.Log.Debug("periodic /proc scan incomplete", "err", err)
				}
			}
		}
	}()
	wg.Wait()
	return errors.Join(errs...)
}

// Objects lists the loaded BPF objects, for self-metrics.
func (a *Agent) Objects() []*kernel.Object {
	var out []*kernel.Object
	for _, p := range a.probes {
		if o := p.Object(); o != nil {
			out = append(out, o)
		}
	}
	return out
}

// Close detaches every probe.
func (a *Agent) Close() error {
	var errs []error
	for _, p := range a.probes {
		errs = append(errs, p.Close())
	}
	a.closeStats()
	return errors.Join(errs...)
}

func (a *Agent) closeStats() {
	if a.stats != nil {
		_ = a.stats.Close()
		a.stats = nil
	}
}
