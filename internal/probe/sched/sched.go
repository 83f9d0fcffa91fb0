// Package sched is the scheduler probe: run-queue latency (as runqlat) per
// container and off-CPU time by reason (sleep, io, lock, preempted) per
// container and per thread, aggregated in the kernel from sched_wakeup,
// sched_wakeup_new and sched_switch and read by user space at scrape time.
package sched

import (
	"context"
	_ "embed"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "sched"

// Config tunes the probe (probes.sched in the config file).
type Config struct {
	Enabled bool `yaml:"enabled"`
	// ByContainer aggregates per cgroup; off, everything is the host.
	ByContainer bool `yaml:"by_container"`
	// MaxThreads bounds the threads that can be off the CPU at once and still
	// be timed when the raw_tp fallback is used (tp_btf keeps the state in
	// task storage, bounded by the tasks); an interval that finds the map
	// full is counted, not timed.
	MaxThreads uint32 `yaml:"max_threads"`
	// MaxCgroups bounds the per-cgroup aggregates (288 bytes per CPU each);
	// samples of further cgroups count under container "other".
	MaxCgroups uint32 `yaml:"max_cgroups"`
	// ThreadStats keeps per-thread totals for `vigil top sched --by process`
	// (which turns it on), at most MaxThreadStats threads (LRU: the least
	// recently run leave first). Metrics never read them.
	ThreadStats    bool   `yaml:"thread_stats"`
	MaxThreadStats uint32 `yaml:"max_thread_stats"`
	// CgroupRoot is where cgroup v2 is mounted, to name containers.
	CgroupRoot string `yaml:"cgroup_root"`
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{Enabled: false, ByContainer: true, MaxThreads: 32768, MaxCgroups: 1024,
		ThreadStats: false, MaxThreadStats: 16384, CgroupRoot: "/sys/fs/cgroup"}
}

// IsEnabled implements probe.Config.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate implements probe.Config.
func (c *Config) Validate() error {
	if c.MaxThreads < 16 || c.MaxThreads > 1<<22 {
		return fmt.Errorf("max_threads: %d must be between 16 and 4194304", c.MaxThreads)
	}
	if c.MaxCgroups < 1 || c.MaxCgroups > 1<<16 {
		return fmt.Errorf("max_cgroups: %d must be between 1 and 65536", c.MaxCgroups)
	}
	if c.MaxThreadStats < 16 || c.MaxThreadStats > 1<<22 {
		return fmt.Errorf("max_thread_stats: %d must be between 16 and 4194304", c.MaxThreadStats)
	}
	return nil
}

// defaultsYAML is this probe's commented section of `vigil config default`.
//
//go:embed defaults.yaml
var defaultsYAML []byte

func init() {
	probe.Register(probe.Spec{
		Name:           Name,
		DefaultYAML:    defaultsYAML,
		Help:           "scheduler latency (like runqlat and offcputime): run-queue latency histograms per container, off-CPU time by reason (sleep, io, lock, preempted) per container and thread, aggregated in the kernel",
		DefaultEnabled: false,
		NewConfig:      func() probe.Config { return DefaultConfig() },
		New:            func(c probe.Config) (probe.Probe, error) { return New(c.(*Config)), nil },
	})
}

// Programs lists the logical programs with their hook candidates.
func Programs() []kernel.ProgramDef {
	def := func(tp string) kernel.ProgramDef {
		return kernel.ProgramDef{Name: tp, Required: true, Hooks: []kernel.Hook{
			{Kind: kernel.TpBTF, Program: "tp_btf_" + tp, Target: tp},
			{Kind: kernel.RawTP, Program: "raw_tp_" + tp, Target: tp},
		}}
	}
	return []kernel.ProgramDef{def("sched_switch"), def("sched_wakeup"), def("sched_wakeup_new")}
}

// Probe is the running scheduler probe.
type Probe struct {
	probe.Base
	cfg  *Config
	maps readMaps
	cg   *proc.Cgroups
}

// New returns an unstarted probe.
func New(cfg *Config) *Probe { return &Probe{Base: probe.Base{Name: Name}, cfg: cfg} }

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadSched()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	// The tp_btf programs keep thread state in task storage (5.11+); without
	// it, drop the map and those programs so all fall back to raw_tp.
	if features.HaveMapType(ebpf.TaskStorage) != nil {
		delete(spec.Maps, "task_state")
		for _, d := range Programs() {
			delete(spec.Programs, d.Hooks[0].Program)
		}
	}
	// The raw_tp programs' threads hash is only needed when tp_btf is not
	// used: load it with one entry first, full size if it turns out needed.
	threadsSize := p.cfg.MaxThreads
	if spec.Maps["task_state"] != nil && !slices.Contains(env.DisabledHooks, kernel.TpBTF) {
		threadsSize = 1
	}
	opts := kernel.LoadOptions{
		Programs: Programs(),
		Constants: map[string]any{
			"key_cgroup":   p.cfg.ByContainer,
			"thread_stats": p.cfg.ThreadStats,
		},
		MapSizes: map[string]uint32{
			"threads":       threadsSize,
			"cgroups":       p.cfg.MaxCgroups,
			"thread_totals": p.cfg.MaxThreadStats,
		},
	}
	if err := p.Load(env, spec, opts); err != nil {
		return err
	}
	// The programs share per-thread state: one hook kind for all of them.
	opts.Probe, opts.Disabled = Name, env.DisabledHooks
	for {
		kind, differ := hooksDiffer(p.Obj)
		small := p.Obj.Programs[0].Hook != kernel.TpBTF && opts.MapSizes["threads"] != p.cfg.MaxThreads
		if !differ && !small {
			break
		}
		_ = p.Obj.Close()
		if differ {
			opts.Disabled = append(slices.Clone(opts.Disabled), kind)
		}
		opts.MapSizes["threads"] = p.cfg.MaxThreads
		if p.Obj, err = kernel.Load(spec, opts); err != nil {
			p.Obj = nil
			return err
		}
	}
	// Typed access to the maps user space reads (task_state is absent on
	// kernels without task storage, so the generated schedMaps would not do).
	if err := p.Obj.Assign(&p.maps); err != nil {
		_ = p.Obj.Close()
		p.Obj = nil
		return err
	}
	p.cg = env.CgroupResolver(p.cfg.CgroupRoot)
	limit := env.LabelLimit
	p.Register(&collector{
		p:       p,
		histCap: metrics.NewLabelCap("vigil_sched_runqueue_latency_seconds", "container", limit),
		offCap:  metrics.NewLabelCap("vigil_sched_offcpu_seconds_total", "container", limit),
	})
	return nil
}

// readMaps are the maps user space reads, by their names in sched.bpf.c.
type readMaps struct {
	Cgroups      *ebpf.Map `ebpf:"cgroups"`
	CgroupsOther *ebpf.Map `ebpf:"cgroups_other"`
	MapFull      *ebpf.Map `ebpf:"map_full"`
	ThreadTotals *ebpf.Map `ebpf:"thread_totals"`
}

// hooksDiffer reports whether the programs attached through different hook
// kinds, and the kind of the first (the one to rule out).
func hooksDiffer(obj *kernel.Object) (kernel.HookKind, bool) {
	for _, pr := range obj.Programs[1:] {
		if pr.Hook != obj.Programs[0].Hook {
			return obj.Programs[0].Hook, true
		}
	}
	return "", false
}

// Run implements probe.Probe: the kernel aggregates, so there is nothing to
// read until a scrape.
func (p *Probe) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Container names a cgroup id as the metrics do: the short container id,
// "" for the host, "other" for the overflow aggregate.
func (p *Probe) Container(cgroupID uint64, overflow bool) string {
	if overflow {
		return metrics.Other
	}
	if p.cg == nil {
		return ""
	}
	return p.cg.Container(cgroupID).Short()
}
