// Package open is the file-open probe: open, openat, openat2 and creat from
// the syscall tracepoints, with paths resolved to absolute in the kernel,
// in-kernel filters, and open counts by container and errno.
package open

import (
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
	names "github.com/vigilproject/vigil/internal/syscalls"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "open"

// Limits of the in-kernel filters, as in open.bpf.c.
const (
	MaxPrefixes   = 8
	MaxPrefixLen  = 128
	MaxFilterPIDs = 1024
	MaxCgroups    = 1024
)

// Config tunes the probe (probes.open in the config file).
type Config struct {
	Enabled     bool   `yaml:"enabled"`
	RingbufSize uint32 `yaml:"ringbuf_size"` // bytes: a power of two, at least 4096
	// RingbufWakeupBytes batches reader wake-ups: the kernel wakes vigil
	// once this many bytes wait; smaller batches are collected every
	// kernel.RingPollInterval. 0 wakes on every record. Left out of a
	// config file, it follows ringbuf_size (DefaultWakeupBytes).
	RingbufWakeupBytes uint32 `yaml:"ringbuf_wakeup_bytes"`
	// Events lets open events reach user space while a consumer (a trace,
	// an event rule) subscribes to them; counts are kept either way.
	Events bool `yaml:"events"`
	// ResolvePaths joins relative paths to their directory in the kernel.
	ResolvePaths bool `yaml:"resolve_paths"`
	// ExcludeSelf drops vigil's own opens (its /proc reads).
	ExcludeSelf bool `yaml:"exclude_self"`
	// Filters applied in the kernel to events (not to counts).
	FailedOnly   bool     `yaml:"failed_only"`
	PIDs         []uint32 `yaml:"pids"`
	Comm         string   `yaml:"comm"`
	Cgroups      []string `yaml:"cgroups"`    // cgroup v2 paths, e.g. /system.slice/nginx.service, with their subtrees
	Containers   []string `yaml:"containers"` // container id prefixes
	PathPrefixes []string `yaml:"path_prefixes"`
	// CgroupRoot is where cgroup v2 is mounted.
	CgroupRoot string `yaml:"cgroup_root"`
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{Enabled: true, RingbufSize: 4 << 20, RingbufWakeupBytes: DefaultWakeupBytes(4 << 20), Events: true, ResolvePaths: true, ExcludeSelf: true, CgroupRoot: "/sys/fs/cgroup"}
}

// DefaultWakeupBytes is ringbuf_wakeup_bytes when the config leaves it out:
// a 64th of the ring, at most 64 KiB, so a small ring still wakes the reader
// long before it fills.
func DefaultWakeupBytes(ringSize uint32) uint32 { return min(64<<10, ringSize/64) }

// DeriveDefaults sets the knobs whose default follows another knob, unless
// the user's file set them (config calls it after decoding).
func (c *Config) DeriveDefaults(userSet func(key string) bool) {
	if !userSet("ringbuf_wakeup_bytes") {
		c.RingbufWakeupBytes = DefaultWakeupBytes(c.RingbufSize)
	}
}

// IsEnabled implements probe.Config.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate implements probe.Config.
func (c *Config) Validate() error {
	if err := probe.ValidateRingSize(c.RingbufSize); err != nil {
		return err
	}
	if c.RingbufWakeupBytes >= c.RingbufSize/2 {
		return fmt.Errorf("ringbuf_wakeup_bytes: %d must be below half of ringbuf_size (%d)", c.RingbufWakeupBytes, c.RingbufSize)
	}
	if len(c.PIDs) > MaxFilterPIDs {
		return fmt.Errorf("pids: %d given, at most %d", len(c.PIDs), MaxFilterPIDs)
	}
	for _, pid := range c.PIDs {
		if pid == 0 {
			return fmt.Errorf("pids: 0 is not a process id")
		}
	}
	if len(c.Comm) > 15 {
		return fmt.Errorf("comm: %q is longer than the kernel's 15-character command name", c.Comm)
	}
	if len(c.PathPrefixes) > MaxPrefixes {
		return fmt.Errorf("path_prefixes: %d given, at most %d", len(c.PathPrefixes), MaxPrefixes)
	}
	for _, p := range c.PathPrefixes {
		if p == "" || len(p) > MaxPrefixLen {
			return fmt.Errorf("path_prefixes: %q must be 1 to %d bytes", p, MaxPrefixLen)
		}
	}
	for _, cg := range c.Cgroups {
		if !strings.HasPrefix(cg, "/") {
			return fmt.Errorf("cgroups: %q is not a cgroup v2 path starting with /", cg)
		}
	}
	for _, id := range c.Containers {
		if id == "" {
			return fmt.Errorf("containers: empty container id prefix")
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
		Help:           "file opens (open, openat, openat2, creat): absolute path, flags, fd or errno; counts by container and errno",
		DefaultEnabled: true,
		Events:         kinds,
		NewConfig:      func() probe.Config { return DefaultConfig() },
		New:            func(c probe.Config) (probe.Probe, error) { return New(c.(*Config)), nil },
		Narrow:         narrow,
	})
}

// narrow filters opens in the kernel to what the event rules can match,
// unless the config sets a filter of its own.
func narrow(pc probe.Config, f probe.KernelFilter) bool {
	c, ok := pc.(*Config)
	if !ok || f.Kind != event.KindOpen || len(c.PathPrefixes) > 0 || len(c.PIDs) > 0 || c.Comm != "" || len(c.Cgroups) > 0 || len(c.Containers) > 0 {
		return false
	}
	c.PathPrefixes, c.PIDs = f.PathPrefixes, f.PIDs
	return true
}

// Programs lists the logical programs with their hook candidates. openat is
// required; the others exist on x86_64 but not everywhere (openat2 since 5.6).
func Programs() []kernel.ProgramDef {
	var defs []kernel.ProgramDef
	for _, sc := range []string{"openat", "open", "openat2", "creat"} {
		req := sc == "openat"
		defs = append(defs,
			kernel.ProgramDef{Name: "sys_enter_" + sc, Required: req, Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_enter_" + sc, Target: "syscalls/sys_enter_" + sc}}},
			kernel.ProgramDef{Name: "sys_exit_" + sc, Required: req, Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit_" + sc, Target: "syscalls/sys_exit_" + sc}}},
		)
	}
	return defs
}

// Probe is the running open probe.
type Probe struct {
	probe.Base
	cfg  *Config
	maps openMaps // the object's maps, by the names open.bpf.c gives them
	cg   *proc.Cgroups

	events    probe.EventSwitch
	flagCache sync.Map // uint64 flags -> string, bounded by flagCacheMax
	flagCount int
	flagMu    sync.Mutex
}

const flagCacheMax = 1024

// New returns an unstarted probe.
func New(cfg *Config) *Probe { return &Probe{Base: probe.Base{Name: Name}, cfg: cfg} }

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadOpen()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	cgroupIDs, err := p.filterCgroupIDs()
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	var comm [16]byte
	copy(comm[:], p.cfg.Comm)
	self := uint32(0)
	if p.cfg.ExcludeSelf {
		self = uint32(os.Getpid())
	}
	if err := p.Load(env, spec, kernel.LoadOptions{
		Programs: Programs(),
		Constants: map[string]any{
			"self_tgid":         self,
			"failed_only":       p.cfg.FailedOnly,
			"use_pid_filter":    len(p.cfg.PIDs) > 0,
			"use_cgroup_filter": len(cgroupIDs) > 0,
			"use_comm_filter":   p.cfg.Comm != "",
			"comm_filter":       comm,
			"n_prefixes":        uint32(len(p.cfg.PathPrefixes)),
			"resolve_paths":     p.cfg.ResolvePaths,
			"wakeup_bytes":      uint64(p.cfg.RingbufWakeupBytes),
		},
		MapSizes: map[string]uint32{"events": p.cfg.RingbufSize},
	}); err != nil {
		return err
	}
	fail := func(err error) error {
		_ = p.Close()
		return fmt.Errorf("%s: %w", Name, err)
	}
	if err := p.Obj.Assign(&p.maps); err != nil {
		return fail(err)
	}
	if err := p.fillFilters(cgroupIDs); err != nil {
		return fail(err)
	}
	p.cg = env.CgroupResolver(p.cfg.CgroupRoot)
	p.events = probe.EventSwitch{Control: p.maps.Control, Kind: event.KindOpen, Enabled: p.cfg.Events}
	if err := p.events.Set(p.events.Wanted(env.Bus)); err != nil {
		return fail(err)
	}
	p.registerMetrics(env)
	return nil
}

func (p *Probe) fillFilters(cgroupIDs []uint64) error {
	one := uint8(1)
	for _, pid := range p.cfg.PIDs {
		if err := p.maps.FilterPids.Put(pid, one); err != nil {
			return fmt.Errorf("setting pid filter: %w", err)
		}
	}
	for _, id := range cgroupIDs {
		if err := p.maps.FilterCgroups.Put(id, one); err != nil {
			return fmt.Errorf("setting cgroup filter: %w", err)
		}
	}
	for i, pre := range p.cfg.PathPrefixes {
		if err := p.maps.FilterPrefixes.Put(uint32(i), encodePrefix(pre)); err != nil {
			return fmt.Errorf("setting path prefix filter: %w", err)
		}
	}
	return nil
}

// encodePrefix lays a prefix out as the BPF side compares it: 8-byte words.
func encodePrefix(s string) openPrefix {
	var buf [MaxPrefixLen]byte
	copy(buf[:], s)
	pr := openPrefix{Len: uint32(len(s))}
	for i := range pr.Words {
		pr.Words[i] = le.Uint64(buf[i*8:])
	}
	return pr
}

// filterCgroupIDs turns the configured cgroup paths and container id
// prefixes into the cgroup ids (directory inode numbers) of them and their
// subtrees, as they exist now.
func (p *Probe) filterCgroupIDs() ([]uint64, error) {
	if len(p.cfg.Cgroups) == 0 && len(p.cfg.Containers) == 0 {
		return nil, nil
	}
	root := proc.Cgroup2Root(p.cfg.CgroupRoot)
	seen := map[uint64]bool{}
	var ids []uint64
	add := func(dir string) error {
		return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			var st unix.Stat_t
			if unix.Stat(path, &st) == nil && !seen[st.Ino] {
				seen[st.Ino] = true
				ids = append(ids, st.Ino)
			}
			return nil
		})
	}
	for _, cg := range p.cfg.Cgroups {
		dir := filepath.Join(root, filepath.Clean(cg))
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("cgroup filter %s: %w", cg, err)
		}
		if err := add(dir); err != nil {
			return nil, err
		}
	}
	for _, prefix := range p.cfg.Containers {
		before := len(ids)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			rel := "/" + strings.TrimPrefix(strings.TrimPrefix(path, root), "/")
			if c := proc.ParseCgroupPath(rel); c.ID != "" && strings.HasPrefix(c.ID, prefix) {
				if err := add(path); err != nil {
					return err
				}
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(ids) == before {
			return nil, fmt.Errorf("container filter %q: no running container's cgroup under %s matches", prefix, root)
		}
	}
	if len(ids) > MaxCgroups {
		return nil, fmt.Errorf("cgroup filter covers %d cgroups, at most %d", len(ids), MaxCgroups)
	}
	return ids, nil
}

// Run implements probe.Probe: it reads the ring buffer and, every second,
// tells the kernel whether anyone consumes open events.
func (p *Probe) Run(ctx context.Context) error {
	go p.events.Follow(ctx, p.Env.Bus, p.Env.Log)
	return p.ReadRing(ctx, p.handle)
}

func (p *Probe) handle(b []byte) error {
	r, err := decodeOpen(b)
	if err != nil {
		return err
	}
	if !p.Env.Bus.Wants(event.KindOpen) {
		return nil
	}
	p.Env.Bus.Publish(p.toEvent(r))
	return nil
}

func (p *Probe) toEvent(r rawOpen) *event.Open {
	pr := p.Env.Procs.Lookup(r.proc.PID, r.proc.CgroupID)
	e := &event.Open{
		Header:        p.Header(event.KindOpen, r.tsNS, r.proc, pr),
		Syscall:       r.syscall,
		Path:          r.path,
		PathPassed:    r.passed,
		PathResolved:  r.pathState != pathUnresolved,
		PathTruncated: r.pathTruncated,
		Dirfd:         r.dirfd,
		Flags:         r.flags,
		FlagNames:     p.flagNames(r.flags),
		Mode:          r.mode,
		FD:            r.ret,
		Ret:           r.ret,
	}
	switch r.pathState {
	case pathAbsolute:
		e.PathStatus = event.PathAbsolute
	case pathResolved:
		e.PathStatus = event.PathResolved
	default:
		e.PathStatus = event.PathUnresolved
	}
	if r.ret < 0 {
		e.FD = -1
		e.Error = ErrnoName(-r.ret)
	}
	return e
}

// flagNames caches the rendering of the few distinct flag sets a host uses.
func (p *Probe) flagNames(flags uint64) string {
	if s, ok := p.flagCache.Load(flags); ok {
		return s.(string)
	}
	s := FlagNames(flags)
	p.flagMu.Lock()
	if p.flagCount < flagCacheMax {
		p.flagCache.Store(flags, s)
		p.flagCount++
	}
	p.flagMu.Unlock()
	return s
}

// ErrnoName turns an errno value into its symbolic name (ENOENT).
func ErrnoName(errno int32) string {
	if errno <= 0 {
		return "0"
	}
	return names.ErrnoName(int(errno))
}

func (p *Probe) registerMetrics(env *probe.Env) {
	p.Register(&countCollector{
		p:      p,
		ctrCap: metrics.NewLabelCap("vigil_file_opens_total", "container", env.LabelLimit),
	})
}

var (
	opensDesc = prometheus.NewDesc("vigil_file_opens_total",
		"Completed open, openat, openat2 and creat calls, successful or not, by container (capped; \"\" is the host).",
		[]string{"container"}, nil)
	openErrorsDesc = prometheus.NewDesc("vigil_file_open_errors_total",
		"Failed open, openat, openat2 and creat calls by container (capped) and errno name.",
		[]string{"container", "errno"}, nil)
)

// countCollector reads the kernel's per-CPU open counts at scrape time.
type countCollector struct {
	p      *Probe
	ctrCap *metrics.LabelCap
}

func (c *countCollector) Describe(ch chan<- *prometheus.Desc) { ch <- opensDesc; ch <- openErrorsDesc }

func (c *countCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.p.Counts()
	if err != nil {
		c.p.Env.Log.Warn("reading open counts", "err", err)
		return
	}
	type ek struct{ ctr, errno string }
	opens := map[string]uint64{}
	errs := map[ek]uint64{}
	for _, k := range counts {
		ctr := metrics.Other
		if !k.Overflow {
			ctr = c.ctrCap.Value(c.p.cg.Container(k.CgroupID).Short())
		}
		opens[ctr] += k.Count
		if k.Errno != 0 {
			errs[ek{ctr, ErrnoName(int32(k.Errno))}] += k.Count
		}
	}
	for ctr, n := range opens {
		ch <- prometheus.MustNewConstMetric(opensDesc, prometheus.CounterValue, float64(n), ctr)
	}
	for k, n := range errs {
		ch <- prometheus.MustNewConstMetric(openErrorsDesc, prometheus.CounterValue, float64(n), k.ctr, k.errno)
	}
}

// Count is the number of completed opens of one cgroup with one result.
type Count struct {
	CgroupID uint64
	Errno    uint32 // 0 for success
	Count    uint64
	Overflow bool // counted while the per-cgroup map was full: cgroup unknown
}

// Counts reads the kernel's open counts, summed over CPUs.
func (p *Probe) Counts() ([]Count, error) {
	var out []Count
	var k openCountKey
	var perCPU []uint64
	it := p.maps.Counts.Iterate()
	for it.Next(&k, &perCPU) {
		out = append(out, Count{CgroupID: k.CgroupId, Errno: k.Err, Count: sum(perCPU)})
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	ov := p.maps.CountsOverflow
	var vals [][]uint64
	keys := make([]uint32, 256)
	for i := range keys {
		keys[i] = uint32(i)
	}
	for i := range keys {
		var v []uint64
		if err := ov.Lookup(keys[i], &v); err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	for i, v := range vals {
		if n := sum(v); n > 0 {
			out = append(out, Count{Errno: uint32(i), Count: n, Overflow: true})
		}
	}
	return out, nil
}

func sum(v []uint64) uint64 {
	var s uint64
	for _, x := range v {
		s += x
	}
	return s
}
