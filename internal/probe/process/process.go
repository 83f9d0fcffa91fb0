// Package process is the process lifecycle probe: exec (including failed
// execs), fork and exit from the sched and execve tracepoints.
package process

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
	names "github.com/vigilproject/vigil/internal/syscalls"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "process"

// Config tunes the probe (probes.process in the config file).
type Config struct {
	Enabled      bool   `yaml:"enabled"`
	RingbufSize  uint32 `yaml:"ringbuf_size"`   // bytes: a power of two, at least 4096
	MaxArgs      int    `yaml:"max_args"`       // arguments kept per exec
	MaxArgsBytes uint32 `yaml:"max_args_bytes"` // bytes of the argument area copied per exec (at most 8191)
	Forks        bool   `yaml:"forks"`          // report fork events
	FailedExecs  bool   `yaml:"failed_execs"`   // report execs that fail, with their errno
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{Enabled: true, RingbufSize: 1 << 20, MaxArgs: 64, MaxArgsBytes: 4096, Forks: true, FailedExecs: true}
}

// IsEnabled implements probe.Config.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate implements probe.Config.
func (c *Config) Validate() error {
	if err := probe.ValidateRingSize(c.RingbufSize); err != nil {
		return err
	}
	if c.MaxArgs < 1 {
		return fmt.Errorf("max_args: %d must be at least 1", c.MaxArgs)
	}
	if c.MaxArgsBytes < 16 || c.MaxArgsBytes > 8191 {
		return fmt.Errorf("max_args_bytes: %d must be between 16 and 8191", c.MaxArgsBytes)
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
		Help:           "process lifecycle: exec (argv, failed execs), fork, exit (code, signal, lifetime)",
		DefaultEnabled: true,
		Events:         kinds,
		NewConfig:      func() probe.Config { return DefaultConfig() },
		New:            func(c probe.Config) (probe.Probe, error) { return New(c.(*Config)), nil },
	})
}

// Programs lists the logical programs with their hook candidates.
func Programs(cfg *Config) []kernel.ProgramDef {
	sched := func(name string, required bool) kernel.ProgramDef {
		return kernel.ProgramDef{Name: name, Required: required, Hooks: []kernel.Hook{
			{Kind: kernel.TpBTF, Program: "tp_btf_" + short(name), Target: name},
			{Kind: kernel.RawTP, Program: "raw_tp_" + short(name), Target: name},
		}}
	}
	exit := kernel.ProgramDef{Name: "sched_process_exit", Required: true, Hooks: exitHooks}
	defs := []kernel.ProgramDef{sched("sched_process_exec", true), exit}
	if cfg.Forks {
		defs = append(defs, sched("sched_process_fork", true))
	}
	if cfg.FailedExecs {
		for _, sc := range []string{"execve", "execveat"} {
			defs = append(defs,
				kernel.ProgramDef{Name: "sys_enter_" + sc, Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_enter_" + sc, Target: "syscalls/sys_enter_" + sc}}},
				kernel.ProgramDef{Name: "sys_exit_" + sc, Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit_" + sc, Target: "syscalls/sys_exit_" + sc}}},
			)
		}
	}
	return defs
}

// exitHooks: the group_dead variants (Linux 6.16+) first, then the fallback
// that checks signal->live (see process.bpf.c). A variable so tests can
// exercise the fallback on new kernels.
var exitHooks = []kernel.Hook{
	{Kind: kernel.TpBTF, Program: "tp_btf_exit_gd", Target: "sched_process_exit"},
	{Kind: kernel.RawTP, Program: "raw_tp_exit_gd", Target: "sched_process_exit"},
	{Kind: kernel.TpBTF, Program: "tp_btf_exit", Target: "sched_process_exit"},
	{Kind: kernel.RawTP, Program: "raw_tp_exit", Target: "sched_process_exit"},
}

func short(tp string) string { return tp[len("sched_process_"):] }

// Probe is the running process probe.
type Probe struct {
	probe.Base
	cfg *Config

	execs     *prometheus.CounterVec
	execFails *prometheus.CounterVec
	exits     *prometheus.CounterVec
	forks     prometheus.Counter
	lifetime  prometheus.Histogram
	exeCap    *metrics.LabelCap
	ctrCap    *metrics.LabelCap
}

// New returns an unstarted probe.
func New(cfg *Config) *Probe { return &Probe{Base: probe.Base{Name: Name}, cfg: cfg} }

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadProcess()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	if err := p.Load(env, spec, kernel.LoadOptions{
		Programs:  Programs(p.cfg),
		Constants: map[string]any{"max_args_bytes": p.cfg.MaxArgsBytes, "emit_forks": p.cfg.Forks},
		MapSizes:  map[string]uint32{"events": p.cfg.RingbufSize},
	}); err != nil {
		return err
	}
	p.registerMetrics(env)
	return nil
}

func (p *Probe) registerMetrics(env *probe.Env) {
	limit := env.LabelLimit
	p.exeCap = metrics.NewLabelCap("vigil_process_execs_total", "executable", limit)
	p.ctrCap = metrics.NewLabelCap("vigil_process_execs_total", "container", limit)
	p.execs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_process_execs_total",
		Help: "Successful execs, by executable basename and container (both capped; the rest fold into \"other\").",
	}, []string{"executable", "container"})
	p.execFails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_process_exec_failures_total",
		Help: "Failed execve/execveat calls, by executable basename and errno name.",
	}, []string{"executable", "errno"})
	p.exits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_process_exits_total",
		Help: "Process exits, by executable basename, container and outcome (success, failure, signaled).",
	}, []string{"executable", "container", "outcome"})
	p.forks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_process_forks_total",
		Help: "New processes created by fork/clone (threads are not counted).",
	})
	p.lifetime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_process_lifetime_seconds",
		Help:    "Lifetime of processes at exit.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1 ms .. ~70 min
	})
	p.Register(p.execs, p.execFails, p.exits, p.forks, p.lifetime)
}

// Run implements probe.Probe.
func (p *Probe) Run(ctx context.Context) error {
	return p.ReadRing(ctx, p.handle)
}

func (p *Probe) handle(b []byte) error {
	kind, err := recordKind(b)
	if err != nil {
		return err
	}
	switch kind {
	case kindExec, kindExecFailed:
		return p.handleExec(b)
	case kindExit:
		return p.handleExit(b)
	case kindFork:
		return p.handleFork(b)
	}
	return fmt.Errorf("unknown record kind %d", kind)
}

func (p *Probe) handleExec(b []byte) error {
	r, err := decodeExec(b, p.cfg.MaxArgs)
	if err != nil {
		return err
	}
	exe := r.filename
	if !r.failed && !filepath.IsAbs(exe) {
		if target, err := os.Readlink("/proc/" + strconv.Itoa(int(r.proc.PID)) + "/exe"); err == nil {
			exe = target
		}
	}
	base := filepath.Base(exe)
	if r.failed {
		p.execFails.WithLabelValues(p.exeCap.Value(base), errnoName(-r.retval)).Inc()
		p.publishExec(r, exe, p.Env.Procs.Lookup(r.proc.PID, r.proc.CgroupID))
		return nil
	}
	entry := r.proc.CacheEntry()
	entry.Exe, entry.Args = exe, r.args
	pr := p.Env.Procs.Exec(entry)
	p.execs.WithLabelValues(p.exeCap.Value(base), p.ctrCap.Value(pr.Container.Short())).Inc()
	p.publishExec(r, exe, pr)
	return nil
}

func (p *Probe) publishExec(r rawExec, exe string, pr proc.Process) {
	if !p.Env.Bus.Wants(event.KindExec) {
		return
	}
	e := &event.Exec{
		Header:        p.Header(event.KindExec, r.tsNS, r.proc, pr),
		Filename:      r.filename,
		Args:          r.args,
		ArgsTruncated: r.argsTruncated,
		Ret:           r.retval,
	}
	e.Exe = exe
	if r.failed {
		e.Error = errnoName(-r.retval)
	}
	p.Env.Bus.Publish(e)
}

func (p *Probe) handleExit(b []byte) error {
	r, err := decodeExit(b)
	if err != nil {
		return err
	}
	pr, ok := p.Env.Procs.Exit(r.proc.PID, r.proc.StartNS)
	if !ok {
		pr = p.Env.Procs.Lookup(r.proc.PID, r.proc.CgroupID)
	}
	base := r.proc.Command()
	if pr.Exe != "" {
		base = filepath.Base(pr.Exe)
	}
	status, sig, core := decodeExitCode(r.exitCode)
	outcome := "success"
	switch {
	case sig != 0:
		outcome = "signaled"
	case status != 0:
		outcome = "failure"
	}
	lifetime := 0.0
	if r.tsNS > r.proc.StartNS {
		lifetime = float64(r.tsNS-r.proc.StartNS) / 1e9
	}
	p.exits.WithLabelValues(p.exeCap.Value(base), p.ctrCap.Value(pr.Container.Short()), outcome).Inc()
	p.lifetime.Observe(lifetime)
	if !p.Env.Bus.Wants(event.KindExit) {
		return nil
	}
	p.Env.Bus.Publish(&event.Exit{
		Header:   p.Header(event.KindExit, r.tsNS, r.proc, pr),
		ExitCode: status, Signal: sig, CoreDumped: core, LifetimeSeconds: lifetime,
	})
	return nil
}

func (p *Probe) handleFork(b []byte) error {
	r, err := decodeFork(b)
	if err != nil {
		return err
	}
	p.forks.Inc()
	p.Env.Procs.Fork(r.proc.PID, r.childPID, r.childStartNS)
	if !p.Env.Bus.Wants(event.KindFork) {
		return nil
	}
	pr := p.Env.Procs.Lookup(r.proc.PID, r.proc.CgroupID)
	p.Env.Bus.Publish(&event.Fork{
		Header:   p.Header(event.KindFork, r.tsNS, r.proc, pr),
		ChildPID: r.childPID, ChildStartNS: r.childStartNS,
	})
	return nil
}

// decodeExitCode splits the kernel's exit_code into exit status, signal and
// core-dump flag, as wait(2) does.
func decodeExitCode(code uint32) (status, signal int, core bool) {
	return int(code>>8) & 0xff, int(code & 0x7f), code&0x80 != 0
}

// errnoName turns an errno value into its symbolic name (ENOENT).
func errnoName(errno int32) string {
	if errno <= 0 {
		return "0"
	}
	return names.ErrnoName(int(errno))
}
