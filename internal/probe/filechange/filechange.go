// Package filechange is the file-change probe: unlink, rmdir, rename,
// truncate, chmod, chown, link, symlink and mkdir (every syscall form) from
// the syscall tracepoints, with paths resolved to absolute in the kernel and
// an in-kernel filter of watched trees: changes elsewhere are only counted.
package filechange

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	names "github.com/vigilproject/vigil/internal/syscalls"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "filechange"

// DefaultWatchPaths are the trees whose changes reach user space by
// default: system configuration and credentials, home directories (SSH
// keys, shell profiles), logs, binaries, boot and service definitions,
// scheduled jobs, and the world-writable places payloads are dropped in.
var DefaultWatchPaths = []string{
	"/etc/", "/root/", "/home/", "/var/log/", "/var/spool/cron/",
	"/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/",
	"/lib/systemd/", "/usr/lib/systemd/", "/run/systemd/system/", "/boot/",
	"/tmp/", "/var/tmp/", "/dev/shm/",
}

// Config tunes the probe (probes.filechange in the config file).
type Config struct {
	Enabled            bool   `yaml:"enabled"`
	RingbufSize        uint32 `yaml:"ringbuf_size"`         // bytes: a power of two, at least 4096
	RingbufWakeupBytes uint32 `yaml:"ringbuf_wakeup_bytes"` // 0 wakes the reader on every record
	// Events lets file_change events reach user space while a consumer (a
	// trace, an event rule) subscribes to them; counts are kept either way.
	Events bool `yaml:"events"`
	// ResolvePaths joins relative paths to their directory in the kernel
	// (and names the file of fd-based calls).
	ResolvePaths bool `yaml:"resolve_paths"`
	// ExcludeSelf drops vigil's own calls.
	ExcludeSelf bool `yaml:"exclude_self"`
	// WriteOpens hooks open, openat, openat2 and creat for open_write
	// events: how most files are created or rewritten. Every open on the
	// host then runs two more (small) programs.
	WriteOpens bool `yaml:"write_opens"`
	// WatchPaths are the path prefixes whose changes become events; a
	// change is watched when its path, or its path followed by '/', starts
	// with one ("/etc/" covers /etc too). Empty watches every path.
	WatchPaths []string `yaml:"watch_paths"`
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{Enabled: true, RingbufSize: 1 << 20, RingbufWakeupBytes: 16 << 10, Events: true, ResolvePaths: true, ExcludeSelf: true, WriteOpens: true,
		WatchPaths: append([]string(nil), DefaultWatchPaths...)}
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
	for _, p := range c.WatchPaths {
		if len(p) == 0 || p[0] != '/' || len(p) >= pathBuf {
			return fmt.Errorf("watch_paths: %q must be an absolute path prefix of 1 to %d bytes", p, pathBuf-1)
		}
	}
	return nil
}

//go:embed defaults.yaml
var defaultsYAML []byte

func init() {
	probe.Register(probe.Spec{
		Name:           Name,
		DefaultYAML:    defaultsYAML,
		Help:           "file changes (unlink, rmdir, rename, truncate, chmod, chown, link, symlink, mkdir, opens for writing): absolute paths, new mode/owner/length, result; events for watched trees, counts for all",
		DefaultEnabled: true,
		Events:         kinds,
		NewConfig:      func() probe.Config { return DefaultConfig() },
		New:            func(c probe.Config) (probe.Probe, error) { return New(c.(*Config)), nil },
	})
}

// syscallsHooked lists the syscalls; every one is optional except unlinkat,
// renameat2, fchmodat and openat (x86_64 has them all; fchmodat2 since 6.6).
var syscallsHooked = []string{
	"unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2", "truncate", "ftruncate",
	"chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
	"link", "linkat", "symlink", "symlinkat", "mkdir", "mkdirat",
	"open", "openat", "openat2", "creat",
}

// openSyscalls are the hooks of open_write events.
var openSyscalls = []string{"open", "openat", "openat2", "creat"}

// Programs lists the logical programs with their hook candidates, the opens
// only with writeOpens. Every exit tracepoint runs the same program.
func Programs(writeOpens bool) []kernel.ProgramDef {
	var defs []kernel.ProgramDef
	for _, sc := range syscallsHooked {
		if !writeOpens && slices.Contains(openSyscalls, sc) {
			continue
		}
		req := sc == "unlinkat" || sc == "renameat2" || sc == "fchmodat" || sc == "openat"
		defs = append(defs,
			kernel.ProgramDef{Name: "sys_enter_" + sc, Required: req, Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_enter_" + sc, Target: "syscalls/sys_enter_" + sc}}},
			kernel.ProgramDef{Name: "sys_exit_" + sc, Required: req, Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit", Target: "syscalls/sys_exit_" + sc}}},
		)
	}
	return defs
}

// Probe is the running file-change probe.
type Probe struct {
	probe.Base
	cfg    *Config
	maps   filechangeMaps
	plan   watchPlan
	events probe.EventSwitch

	foldedDrops prometheus.Counter
}

// New returns an unstarted probe.
func New(cfg *Config) *Probe {
	return &Probe{Base: probe.Base{Name: Name}, cfg: cfg, plan: planWatch(cfg.WatchPaths)}
}

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadFilechange()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	self := uint32(0)
	if p.cfg.ExcludeSelf {
		self = uint32(os.Getpid())
	}
	if err := p.Load(env, spec, kernel.LoadOptions{
		Programs: Programs(p.cfg.WriteOpens),
		Constants: map[string]any{
			"self_tgid":     self,
			"resolve_paths": p.cfg.ResolvePaths,
			"watch_all":     len(p.cfg.WatchPaths) == 0,
			"wakeup_bytes":  uint64(p.cfg.RingbufWakeupBytes),
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
	for i, e := range p.plan.entries {
		k := filechangeVigilPathKey{Prefixlen: uint32(8 * len(e))}
		copy(k.Data[:], e)
		if err := p.maps.Watched.Put(&k, uint32(i)); err != nil {
			return fail(fmt.Errorf("setting watched prefix %q: %w", e, err))
		}
	}
	p.events = probe.EventSwitch{Control: p.maps.Control, Kind: KindFileChange, Enabled: p.cfg.Events}
	if err := p.events.Set(p.events.Wanted(env.Bus)); err != nil {
		return fail(err)
	}
	p.registerMetrics()
	return nil
}

// Run implements probe.Probe: it reads the ring buffer and, every second,
// tells the kernel whether anyone consumes file_change events.
func (p *Probe) Run(ctx context.Context) error {
	go p.events.Follow(ctx, p.Env.Bus, p.Env.Log)
	return p.ReadRing(ctx, p.handle)
}

func (p *Probe) handle(b []byte) error {
	r, err := decodeChange(b)
	if err != nil {
		return err
	}
	watch, ok := p.plan.admits(r.watched, r.watchedPaths()...)
	if !ok {
		if p.foldedDrops != nil {
			p.foldedDrops.Inc()
		}
		return nil
	}
	if p.Env.Bus == nil || !p.Env.Bus.Wants(KindFileChange) {
		return nil
	}
	e := p.toEvent(r)
	e.Watch = watch
	p.Env.Bus.Publish(e)
	return nil
}

// watchedPaths are the paths the kernel filter looked at.
func (r *rawChange) watchedPaths() []string {
	if r.state1 == stateRaw {
		return []string{r.path2}
	}
	return []string{r.path1, r.path2}
}

func stateName(s uint8) string { return stateNames[s] }

func (p *Probe) toEvent(r rawChange) *FileChange {
	pr := p.Env.Procs.Lookup(r.proc.PID, r.proc.CgroupID)
	e := p.eventOf(r)
	e.Header = p.Header(KindFileChange, r.tsNS, r.proc, pr)
	return e
}

// eventOf is the event of a record, header aside.
func (p *Probe) eventOf(r rawChange) *FileChange {
	e := &FileChange{
		Op:      r.op,
		Syscall: r.syscall,
		Dirfd:   r.dirfd,
		NewUID:  -1,
		NewGID:  -1,
		Flags:   r.flags,
		Ret:     r.ret,
	}
	switch r.op {
	case OpSymlink:
		e.Path, e.PathStatus, e.PathTruncated = r.path2, stateName(r.state2), r.trunc2
		e.Target = r.path1
		e.Dirfd = r.dirfd2
	default:
		e.Path, e.PathStatus, e.PathTruncated = r.path1, stateName(r.state1), r.trunc1
		if r.state2 != stateNone {
			e.NewPath, e.NewPathStatus, e.NewPathTruncated = r.path2, stateName(r.state2), r.trunc2
		}
	}
	switch r.op {
	case OpChmod, OpMkdir, OpOpenWrite:
		e.Mode = r.mode
		e.Setuid, e.Setgid = r.mode&0o4000 != 0, r.mode&0o2000 != 0
	case OpChown:
		e.NewUID, e.NewGID = ownerID(r.uid), ownerID(r.gid)
	case OpTruncate:
		e.Length = r.length
	}
	if r.ret < 0 {
		e.Error = names.ErrnoName(int(-r.ret))
	}
	return e
}

// ownerID turns chown's uid_t/gid_t argument into an id, -1 for "unchanged".
func ownerID(v uint32) int64 {
	if v == ^uint32(0) {
		return -1
	}
	return int64(v)
}

var (
	changesDesc = prometheus.NewDesc("vigil_file_changes_total",
		"Completed file-change calls (unlink, rmdir, rename, truncate, chmod, chown, link, symlink, mkdir, open_write) by op, by whether a path was under a watched tree (watched=\"true\": an event was possible) and by result.",
		[]string{"op", "watched", "result"}, nil)
	foldedDesc = prometheus.NewDesc("vigil_file_change_watch_paths_folded",
		"Watched path prefixes the kernel filter could not hold as given (more than it holds, or longer than 255 bytes): it holds a broader prefix and user space drops what the broader one lets through (vigil_file_change_filter_dropped_total).",
		nil, nil)
)

func (p *Probe) registerMetrics() {
	p.foldedDrops = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_file_change_filter_dropped_total",
		Help: "File-change records the kernel let through only because it holds a broader prefix than the configured ones (vigil_file_change_watch_paths_folded), dropped in user space.",
	})
	p.Register(p.foldedDrops, &countCollector{p: p})
}

type countCollector struct{ p *Probe }

func (c *countCollector) Describe(ch chan<- *prometheus.Desc) { ch <- changesDesc; ch <- foldedDesc }

func (c *countCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(foldedDesc, prometheus.GaugeValue, float64(c.p.plan.folded))
	counts, err := c.p.Counts()
	if err != nil {
		c.p.Env.Log.Warn("reading file change counts", "err", err)
		return
	}
	for _, k := range counts {
		ch <- prometheus.MustNewConstMetric(changesDesc, prometheus.CounterValue, float64(k.Count), k.Op, fmt.Sprint(k.Watched), k.result())
	}
}

// Count is the number of completed calls of one op, watched or not, with
// one result.
type Count struct {
	Op      string
	Watched bool
	Failed  bool
	Count   uint64
}

func (c Count) result() string {
	if c.Failed {
		return "error"
	}
	return "ok"
}

// Counts reads the kernel's counts, summed over CPUs; only non-zero ones.
func (p *Probe) Counts() ([]Count, error) {
	var out []Count
	for op := 1; op < numOps; op++ {
		for slot := 0; slot < 4; slot++ {
			var perCPU []uint64
			if err := p.maps.Counts.Lookup(uint32(op*4+slot), &perCPU); err != nil {
				return nil, err
			}
			var n uint64
			for _, v := range perCPU {
				n += v
			}
			if n > 0 {
				out = append(out, Count{Op: opNames[op], Watched: slot&2 != 0, Failed: slot&1 != 0, Count: n})
			}
		}
	}
	return out, nil
}
