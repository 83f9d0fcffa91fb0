// Package syscalls is the syscall statistics probe: per-syscall counts,
// errors by errno and latency histograms, aggregated in the kernel from
// raw_syscalls sys_enter/sys_exit and read by user space at scrape time.
package syscalls

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
	names "github.com/vigilproject/vigil/internal/syscalls"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "syscalls"

// HistBuckets is the number of log2 latency buckets kept in the kernel:
// bucket i counts durations below 2^(i+10) ns (bucket 0: under 1.024 µs),
// the last one everything from 2^34 ns (17.2 s) up.
const HistBuckets = 26

// MaxFilterPIDs bounds the pid filter, as in syscalls.bpf.c.
const MaxFilterPIDs = 1024

// Config tunes the probe (probes.syscalls in the config file).
type Config struct {
	Enabled bool `yaml:"enabled"`
	// MaxEntries bounds the (syscall, cgroup, comm) aggregation map. Each
	// entry costs 232 bytes per CPU. Syscalls that find it full are still
	// counted, under process and container "other".
	MaxEntries uint32 `yaml:"max_entries"`
	// ByProcess aggregates per thread command name (comm); ByContainer per
	// cgroup. Turning one off shrinks the map and the series.
	ByProcess   bool `yaml:"by_process"`
	ByContainer bool `yaml:"by_container"`
	// LatencyHistograms exposes vigil_syscall_duration_seconds.
	LatencyHistograms bool `yaml:"latency_histograms"`
	// PIDs limits the statistics to these processes (empty: all).
	PIDs []uint32 `yaml:"pids"`
	// CgroupRoot is where cgroup v2 is mounted, to name containers.
	CgroupRoot string `yaml:"cgroup_root"`
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{Enabled: false, MaxEntries: 4096, ByProcess: true, ByContainer: true, LatencyHistograms: true, CgroupRoot: "/sys/fs/cgroup"}
}

// IsEnabled implements probe.Config.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate implements probe.Config.
func (c *Config) Validate() error {
	if c.MaxEntries < 64 || c.MaxEntries > 1<<20 {
		return fmt.Errorf("max_entries: %d must be between 64 and 1048576", c.MaxEntries)
	}
	if len(c.PIDs) > MaxFilterPIDs {
		return fmt.Errorf("pids: %d given, at most %d", len(c.PIDs), MaxFilterPIDs)
	}
	for _, pid := range c.PIDs {
		if pid == 0 {
			return fmt.Errorf("pids: 0 is not a process id")
		}
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
		Help:           "syscall statistics (like syscount): counts, errors by errno, latency histograms per syscall, process and container, aggregated in the kernel",
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
			{Kind: kernel.Tracepoint, Program: "tp_" + tp, Target: "raw_syscalls/" + tp},
		}}
	}
	return []kernel.ProgramDef{def("sys_exit"), def("sys_enter")}
}

// Probe is the running syscalls probe.
type Probe struct {
	probe.Base // no ring buffer: Obj, Close and Register only
	cfg        *Config
	maps       statMaps
	cg         *proc.Cgroups
}

// statMaps are the maps user space reads or fills, by their names in
// syscalls.bpf.c (task_starts exists only where task storage does).
type statMaps struct {
	FilterPids     *ebpf.Map `ebpf:"filter_pids"`
	Stats          *ebpf.Map `ebpf:"stats"`
	StatsOverflow  *ebpf.Map `ebpf:"stats_overflow"`
	Errnos         *ebpf.Map `ebpf:"errnos"`
	ErrnosOverflow *ebpf.Map `ebpf:"errnos_overflow"`
}

// New returns an unstarted probe.
func New(cfg *Config) *Probe { return &Probe{Base: probe.Base{Name: Name}, cfg: cfg} }

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadSyscalls()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	// The tp_btf pair keeps syscall start times in task storage (5.11+);
	// without it, drop the map and those programs so the pair falls back.
	if features.HaveMapType(ebpf.TaskStorage) != nil {
		delete(spec.Maps, "task_starts")
		delete(spec.Programs, "tp_btf_sys_enter")
		delete(spec.Programs, "tp_btf_sys_exit")
	}
	opts := kernel.LoadOptions{
		Probe:    Name,
		Programs: Programs(),
		Constants: map[string]any{
			"use_pid_filter": len(p.cfg.PIDs) > 0,
			"key_comm":       p.cfg.ByProcess,
			"key_cgroup":     p.cfg.ByContainer,
		},
		MapSizes: map[string]uint32{"stats": p.cfg.MaxEntries},
		Disabled: env.DisabledHooks,
	}
	obj, err := kernel.Load(spec, opts)
	if err != nil {
		return err
	}
	// Entry and exit must share a store: same hook kind for both.
	for hooksDiffer(obj) {
		kind := obj.Programs[0].Hook
		_ = obj.Close()
		opts.Disabled = append(slices.Clone(opts.Disabled), kind)
		if obj, err = kernel.Load(spec, opts); err != nil {
			return err
		}
	}
	if err := obj.Assign(&p.maps); err != nil {
		_ = obj.Close()
		return err
	}
	for _, pid := range p.cfg.PIDs {
		if err := p.maps.FilterPids.Put(pid, uint8(1)); err != nil {
			_ = obj.Close()
			return fmt.Errorf("%s: setting pid filter: %w", Name, err)
		}
	}
	p.Env, p.Obj = env, obj
	p.cg = env.CgroupResolver(p.cfg.CgroupRoot)
	limit := env.LabelLimit
	p.Register(&collector{
		p:       p,
		procCap: metrics.NewLabelCap("vigil_syscalls_total", "process", limit),
		ctrCap:  metrics.NewLabelCap("vigil_syscalls_total", "container", limit),
	})
	return nil
}

// hooksDiffer reports whether sys_enter and sys_exit attached through
// different hook kinds.
func hooksDiffer(obj *kernel.Object) bool {
	return len(obj.Programs) == 2 && obj.Programs[0].Hook != obj.Programs[1].Hook
}

// Run implements probe.Probe: the kernel aggregates, so there is nothing to
// read until a scrape.
func (p *Probe) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Stat is the kernel's aggregate for one (syscall, cgroup, comm).
type Stat struct {
	Nr       int
	Comm     string // thread command name; "" when not aggregated by process
	CgroupID uint64 // 0 when not aggregated by container
	Overflow bool   // counted while the map was full: comm and cgroup unknown
	Count    uint64
	Errors   uint64
	TotalNS  uint64
	Hist     [HistBuckets]uint64
}

// Syscall is the syscall's name.
func (s *Stat) Syscall() string { return names.Name(s.Nr) }

// ErrnoStat counts one syscall's failures with one errno (0: the errno map
// was full).
type ErrnoStat struct {
	Nr    int
	Errno uint32
	Count uint64
}

// Snapshot reads the kernel aggregates, summed over CPUs.
func (p *Probe) Snapshot() ([]Stat, []ErrnoStat, error) {
	var stats []Stat
	var k syscallsStatKey
	var vals []syscallsStatVal
	it := p.maps.Stats.Iterate()
	for it.Next(&k, &vals) {
		s := Stat{Nr: int(k.Nr), CgroupID: k.CgroupId, Comm: comm(k.Comm)}
		addVals(&s, vals)
		stats = append(stats, s)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading syscall stats: %w", err)
	}
	var nr uint32
	ov := p.maps.StatsOverflow.Iterate()
	for ov.Next(&nr, &vals) {
		s := Stat{Nr: int(nr), Overflow: true}
		addVals(&s, vals)
		if s.Count > 0 {
			stats = append(stats, s)
		}
	}
	if err := ov.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading syscall stats: %w", err)
	}

	var errs []ErrnoStat
	var ek syscallsErrnoKey
	var counts []uint64
	ei := p.maps.Errnos.Iterate()
	for ei.Next(&ek, &counts) {
		errs = append(errs, ErrnoStat{Nr: int(ek.Nr), Errno: ek.Err, Count: sum(counts)})
	}
	if err := ei.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading syscall errnos: %w", err)
	}
	eo := p.maps.ErrnosOverflow.Iterate()
	for eo.Next(&nr, &counts) {
		if n := sum(counts); n > 0 {
			errs = append(errs, ErrnoStat{Nr: int(nr), Count: n})
		}
	}
	if err := eo.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading syscall errnos: %w", err)
	}
	return stats, errs, nil
}

func addVals(s *Stat, vals []syscallsStatVal) {
	for i := range vals {
		v := &vals[i]
		s.Count += v.Count
		s.Errors += v.Errors
		s.TotalNS += v.TotalNs
		for b := range s.Hist {
			s.Hist[b] += v.Hist[b]
		}
	}
}

func comm(c [16]int8) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func sum(v []uint64) uint64 {
	var s uint64
	for _, x := range v {
		s += x
	}
	return s
}

// BucketUpperBound is the upper bound of kernel histogram bucket i in
// seconds (+Inf for the last).
func BucketUpperBound(i int) float64 {
	if i >= HistBuckets-1 {
		return math.Inf(1)
	}
	return math.Ldexp(1, i+10) / 1e9
}

// ErrnoName turns an errno value into its symbolic name (ENOENT).
func ErrnoName(errno uint32) string {
	if errno == 0 {
		return metrics.Other
	}
	return names.ErrnoName(int(errno))
}

var (
	callsDesc = prometheus.NewDesc("vigil_syscalls_total",
		"System calls completed, by syscall name, thread command name (process, capped) and container (capped; \"\" is the host). exit and exit_group never complete and are not counted.",
		[]string{"syscall", "process", "container"}, nil)
	failsDesc = prometheus.NewDesc("vigil_syscall_errors_total",
		"System calls that returned an error, by syscall name and errno name (\"other\" when the kernel's errno map was full).",
		[]string{"syscall", "errno"}, nil)
	durDesc = prometheus.NewDesc("vigil_syscall_duration_seconds",
		"Time from syscall entry to exit, by syscall name and container (capped), in log2 buckets measured in the kernel.",
		[]string{"syscall", "container"}, nil)
)

// collector turns the kernel aggregates into metrics at scrape time.
type collector struct {
	p       *Probe
	procCap *metrics.LabelCap
	ctrCap  *metrics.LabelCap
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- callsDesc
	ch <- failsDesc
	if c.p.cfg.LatencyHistograms {
		ch <- durDesc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	stats, errs, err := c.p.Snapshot()
	if err != nil {
		c.p.Env.Log.Warn("reading syscall statistics", "err", err)
		return
	}
	type callKey struct{ sc, proc, ctr string }
	type histKey struct{ sc, ctr string }
	type hist struct {
		count, totalNS uint64
		b              [HistBuckets]uint64
	}
	calls := map[callKey]uint64{}
	hists := map[histKey]*hist{}
	ctrs := map[uint64]string{}
	for i := range stats {
		s := &stats[i]
		sc := s.Syscall()
		procName, ctr := metrics.Other, metrics.Other
		if !s.Overflow {
			procName = c.procCap.Value(s.Comm)
			name, ok := ctrs[s.CgroupID]
			if !ok {
				name = c.ctrCap.Value(c.p.cg.Container(s.CgroupID).Short())
				ctrs[s.CgroupID] = name
			}
			ctr = name
		}
		calls[callKey{sc, procName, ctr}] += s.Count
		if c.p.cfg.LatencyHistograms {
			hk := histKey{sc, ctr}
			h := hists[hk]
			if h == nil {
				h = &hist{}
				hists[hk] = h
			}
			h.count += s.Count
			h.totalNS += s.TotalNS
			for b := range h.b {
				h.b[b] += s.Hist[b]
			}
		}
	}
	for k, n := range calls {
		ch <- prometheus.MustNewConstMetric(callsDesc, prometheus.CounterValue, float64(n), k.sc, k.proc, k.ctr)
	}
	for k, h := range hists {
		buckets := make(map[float64]uint64, HistBuckets-1)
		var cum uint64
		for b := 0; b < HistBuckets-1; b++ {
			cum += h.b[b]
			buckets[BucketUpperBound(b)] = cum
		}
		ch <- prometheus.MustNewConstHistogram(durDesc, h.count, float64(h.totalNS)/1e9, buckets, k.sc, k.ctr)
	}
	type errKey struct{ sc, errno string }
	fails := map[errKey]uint64{}
	for _, e := range errs {
		fails[errKey{names.Name(e.Nr), ErrnoName(e.Errno)}] += e.Count
	}
	for k, n := range fails {
		ch <- prometheus.MustNewConstMetric(failsDesc, prometheus.CounterValue, float64(n), k.sc, k.errno)
	}
}
