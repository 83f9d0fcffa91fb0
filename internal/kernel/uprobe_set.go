package kernel

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// DefaultMaxUprobeBinaries bounds a UprobeSet when its options leave
// MaxBinaries at zero.
const DefaultMaxUprobeBinaries = 64

// UprobeSetOptions describes one uprobe placed in many binaries.
type UprobeSetOptions struct {
	// Name is the logical program name shown in Status and metrics.
	Name string
	// Program is the BPF program in the object (a SEC("uprobe") program).
	Program string
	// Symbol and Offset locate the instruction in every binary, as in Hook.
	// Leave both empty for a set whose binaries each get their own
	// instructions (AddOffsets).
	Symbol string
	Offset uint64
	// PID limits every attachment to one process; 0 is every process.
	PID int
	// Return attaches uretprobes (the program runs as the function
	// returns); binaries built by Go are refused (see attach_uprobe.go).
	Return bool
	// MaxBinaries bounds the set; binaries beyond it are refused and
	// counted as dropped.
	MaxBinaries int
}

// UprobeSet attaches one program to binaries found at run time (from exec
// events, /proc scans or configuration). A uprobe on a binary covers every
// process that maps its inode, those running now and those started later,
// so the set attaches once per (device, inode), whatever path names it.
// It is bounded by MaxBinaries; refusals and failures are counted in
// vigil_uprobe_attach_failures_total. Object.Close closes the set.
//
// Paths are resolved in the agent's mount namespace; for a process in a
// container pass /proc/PID/root/<path>. A binary replaced on disk (an
// upgrade) is a new inode and a new attachment; the old one stays, counted
// against MaxBinaries, until the set is closed.
type UprobeSet struct {
	obj  *Object
	opts UprobeSetOptions
	prog *ebpf.Program

	mu       sync.Mutex
	closed   bool
	attached map[fileID]*uprobeBinary
	order    []fileID
	rejected map[fileID]string // binaries that failed, so exec storms do not re-read them
	fails    map[string]uint64 // by reason: "limit", "error"
}

type fileID struct{ dev, ino uint64 }

type uprobeBinary struct {
	path  string
	links []link.Link
}

// UprobeAt is one instruction to probe in a binary: its file offset, and
// the cookie the program reads with bpf_get_attach_cookie.
type UprobeAt struct {
	Offset uint64
	Cookie uint64
}

// NewUprobeSet loads opts.Program from the object, ready to be attached by
// Add. The object keeps track of the set: it appears in Status and is closed
// with the object.
func (o *Object) NewUprobeSet(opts UprobeSetOptions) (*UprobeSet, error) {
	if opts.MaxBinaries <= 0 {
		opts.MaxBinaries = DefaultMaxUprobeBinaries
	}
	if opts.Name == "" {
		opts.Name = opts.Program
	}
	prog, err := o.LoadProgram(opts.Program)
	if err != nil {
		return nil, fmt.Errorf("%s: uprobe set %s: %w", o.Probe, opts.Name, explain(err))
	}
	s := &UprobeSet{
		obj: o, opts: opts, prog: prog,
		attached: map[fileID]*uprobeBinary{},
		rejected: map[fileID]string{},
		fails:    map[string]uint64{},
	}
	o.setsMu.Lock()
	o.sets = append(o.sets, s)
	o.setsMu.Unlock()
	return s, nil
}

// Add attaches the program to the binary at path unless the same file is
// already covered. It reports whether a new attachment was made; an error
// names the binary and says why (no such symbol, the set is full, ...).
func (s *UprobeSet) Add(path string) (bool, error) {
	if s.opts.Symbol == "" && s.opts.Offset == 0 {
		return false, fmt.Errorf("uprobe set %s: neither a symbol nor an offset given (this set takes AddOffsets)", s.opts.Name)
	}
	return s.add(path, nil)
}

// AddOffsets attaches the program at each instruction of at in the binary
// at path (offsets computed for that binary, e.g. the RET instructions of a
// Go function), unless the same file is already covered. All or none: when
// one attach fails, the others are undone and the binary counts as one
// failure.
func (s *UprobeSet) AddOffsets(path string, at []UprobeAt) (bool, error) {
	if len(at) == 0 {
		return false, fmt.Errorf("uprobe set %s: no offsets for %s", s.opts.Name, path)
	}
	return s.add(path, at)
}

func (s *UprobeSet) add(path string, at []UprobeAt) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, fmt.Errorf("uprobe: binary %s: %w", path, err)
	}
	id := fileID{dev: st.Dev, ino: st.Ino}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errors.New("uprobe set is closed")
	}
	if _, ok := s.attached[id]; ok {
		return false, nil
	}
	if reason, ok := s.rejected[id]; ok {
		return false, errors.New(reason)
	}
	if len(s.attached) >= s.opts.MaxBinaries {
		s.fails["limit"]++
		return false, fmt.Errorf("uprobe: binary %s not attached: the %s set is full (%d binaries)", path, s.opts.Name, s.opts.MaxBinaries)
	}
	var links []link.Link
	var err error
	if at == nil {
		var l link.Link
		if l, err = uprobeAt(s.prog, path, s.opts.Symbol, s.opts.Offset, s.opts.PID, s.opts.Return); err == nil {
			links = []link.Link{l}
		}
	} else {
		links, err = uprobesAt(s.prog, path, at, s.opts.PID)
	}
	if err != nil {
		s.fails["error"]++
		if len(s.rejected) >= 4*s.opts.MaxBinaries {
			clear(s.rejected) // bounded: forget old failures rather than grow
		}
		s.rejected[id] = err.Error()
		return false, err
	}
	s.attached[id] = &uprobeBinary{path: path, links: links}
	s.order = append(s.order, id)
	return true, nil
}

// uprobesAt places p at every offset of at, or at none.
func uprobesAt(p *ebpf.Program, path string, at []UprobeAt, pid int) ([]link.Link, error) {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, fmt.Errorf("uprobe: opening %s: %w", path, err)
	}
	links := make([]link.Link, 0, len(at))
	for _, a := range at {
		l, err := ex.Uprobe("", p, &link.UprobeOptions{PID: pid, Address: a.Offset, Cookie: a.Cookie})
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("uprobe %s at offset %#x: %w", path, a.Offset, err)
		}
		links = append(links, l)
	}
	return links, nil
}

// Len is the number of binaries attached.
func (s *UprobeSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attached)
}

// Status lists one attached ProgramStatus per binary, in attach order.
func (s *UprobeSet) Status() []ProgramStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProgramStatus, 0, len(s.order))
	for _, id := range s.order {
		b := s.attached[id]
		detail := fmt.Sprintf("binary %s (dev %d, inode %d)", b.path, id.dev, id.ino)
		if s.opts.PID != 0 {
			detail += fmt.Sprintf(", pid %d", s.opts.PID)
		}
		if s.opts.Return {
			detail += ", on return"
		}
		target := s.opts.Symbol
		switch {
		case target == "" && s.opts.Offset == 0:
			target = fmt.Sprintf("%d offsets", len(b.links))
		case target == "":
			target = fmt.Sprintf("%#x", s.opts.Offset)
		}
		out = append(out, ProgramStatus{
			Probe: s.obj.Probe, Name: s.opts.Name, Attached: true, Hook: Uprobe,
			Target: target, BPFProgram: s.opts.Program, Detail: detail,
		})
	}
	return out
}

// Close detaches the program from every binary and unloads it.
func (s *UprobeSet) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, id := range s.order {
		for _, l := range s.attached[id].links {
			errs = append(errs, l.Close())
		}
	}
	s.attached, s.order = map[fileID]*uprobeBinary{}, nil
	errs = append(errs, s.prog.Close())
	return errors.Join(errs...)
}

var (
	uprobeBinariesDesc = prometheus.NewDesc("vigil_uprobe_binaries",
		"Binaries a uprobe set is attached to.", []string{"probe", "program"}, nil)
	uprobeFailDesc = prometheus.NewDesc("vigil_uprobe_attach_failures_total",
		"Binaries a uprobe set did not attach to: \"limit\" when the set was full, \"error\" when the attach failed (no such symbol, not ELF).",
		[]string{"probe", "program", "reason"}, nil)
)

// Describe implements prometheus.Collector. It describes nothing, which
// makes the set an unchecked collector: a probe may register several sets,
// kept apart by their program label.
func (s *UprobeSet) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *UprobeSet) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	n := len(s.attached)
	fails := map[string]uint64{"limit": s.fails["limit"], "error": s.fails["error"]}
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(uprobeBinariesDesc, prometheus.GaugeValue, float64(n), s.obj.Probe, s.opts.Name)
	for _, r := range slices.Sorted(maps.Keys(fails)) {
		ch <- prometheus.MustNewConstMetric(uprobeFailDesc, prometheus.CounterValue, float64(fails[r]), s.obj.Probe, s.opts.Name, r)
	}
}
