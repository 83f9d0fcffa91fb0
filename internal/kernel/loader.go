package kernel

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// Hook is one way of running a program: the program in the object that
// implements it and the kernel hook it attaches to. Which fields matter
// depends on Kind; each attach kind documents its own in attach_<kind>.go.
type Hook struct {
	Kind    HookKind
	Program string // program name in the BPF object
	// Target is "group/name" for tracepoints, the event or function name for
	// raw_tp, tp_btf, fentry, kprobe and lsm, the symbol for uprobes (may be
	// empty with an Offset), the cgroup v2 directory for cgroup_skb, and
	// unused for perf_event.
	Target string

	// Binary is the executable or library a uprobe is placed in.
	Binary string
	// Offset is, for a uprobe, relative to the Target symbol, or the file
	// offset of the instruction when Target is empty.
	Offset uint64
	// PID restricts a uprobe or a perf_event sampler to one process; 0 is
	// every process.
	PID int
	// Sampling says how often a perf_event program runs.
	Sampling Sampling
}

// ProgramDef is a logical program with its hook candidates, best first.
type ProgramDef struct {
	Name     string
	Required bool
	Hooks    []Hook
}

// LoadOptions says how to load one probe's object.
type LoadOptions struct {
	Probe     string
	Programs  []ProgramDef
	Constants map[string]any    // values for `volatile const` knobs
	MapSizes  map[string]uint32 // max_entries overrides
	Disabled  []HookKind        // hook kinds the operator ruled out
	// Later names programs kept loadable after Load, for Object.LoadProgram
	// and Object.NewUprobeSet (targets found at run time). Only these are
	// kept: a parsed object is about a megabyte of heap.
	Later []string
}

// ProgramStatus reports how a logical program ended up attached.
type ProgramStatus struct {
	Probe    string   `json:"probe"`
	Name     string   `json:"program"`
	Required bool     `json:"required"`
	Attached bool     `json:"attached"`
	Hook     HookKind `json:"hook,omitempty"`
	Target   string   `json:"target,omitempty"`
	// BPFProgram is the program in the object that implements the chosen hook.
	BPFProgram string   `json:"bpf_program,omitempty"`
	Tried      []string `json:"tried,omitempty"` // "kind target: error" for each failed candidate
	// Detail says what one attachment covers when that is not obvious from
	// the target: the CPUs a perf_event sampler runs on, the binary's
	// device and inode of a uprobe.
	Detail string `json:"detail,omitempty"`
}

// Program is an attached program.
type Program struct {
	ProgramStatus
	Prog  *ebpf.Program
	links []io.Closer
}

// Object is a probe's loaded maps and attached programs.
type Object struct {
	Probe    string
	Maps     map[string]*ebpf.Map
	MapNames []string
	Programs []*Program
	Skipped  []ProgramStatus // optional programs that could not attach

	// Received counts records read from the probe's ring buffer.
	Received atomic.Uint64
	ring     atomic.Pointer[ringPositions]
	ringMu   sync.RWMutex // held while reading the fill, so the reader is not closed under it

	later *ebpf.CollectionSpec // knobs applied, only LoadOptions.Later programs
	// ringCold: the producers follow bpf/include/vigil_ring.h, so the ring
	// needs no polling while quiet.
	ringCold bool

	setsMu sync.Mutex
	sets   []*UprobeSet
}

// RingFill reports the bytes waiting in the events ring buffer and its size,
// while a reader is open.
func (o *Object) RingFill() (used, size int, ok bool) {
	o.ringMu.RLock()
	defer o.ringMu.RUnlock()
	pos := o.ring.Load()
	if pos == nil {
		return 0, 0, false
	}
	return pos.avail(), pos.size, true
}

// Status lists every logical program, attached or not, then every binary a
// UprobeSet attached to.
func (o *Object) Status() []ProgramStatus {
	out := make([]ProgramStatus, 0, len(o.Programs)+len(o.Skipped))
	for _, p := range o.Programs {
		out = append(out, p.ProgramStatus)
	}
	out = append(out, o.Skipped...)
	o.setsMu.Lock()
	sets := slices.Clone(o.sets)
	o.setsMu.Unlock()
	for _, s := range sets {
		out = append(out, s.Status()...)
	}
	return out
}

// Close detaches every program, including those of UprobeSets made from the
// object, and releases every map.
func (o *Object) Close() error {
	var errs []error
	o.setsMu.Lock()
	sets := o.sets
	o.sets = nil
	o.setsMu.Unlock()
	for _, s := range sets {
		errs = append(errs, s.Close())
	}
	for _, p := range o.Programs {
		for _, l := range p.links {
			errs = append(errs, l.Close())
		}
		errs = append(errs, p.Prog.Close())
	}
	for _, m := range o.Maps {
		errs = append(errs, m.Close())
	}
	o.Programs, o.Maps = nil, nil
	return errors.Join(errs...)
}

// Load creates the object's maps, then attaches each logical program through
// the first hook candidate that both loads and attaches. A required program
// that attaches nowhere is an error and leaves nothing behind.
func Load(spec *ebpf.CollectionSpec, opts LoadOptions) (*Object, error) {
	spec = spec.Copy()
	for name, v := range opts.Constants {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("%s: BPF object has no knob %q", opts.Probe, name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("%s: setting knob %s: %w", opts.Probe, name, err)
		}
	}
	// The object follows the wakeup policy of bpf/include/vigil_ring.h: its
	// reader may stop polling when the ring is quiet.
	_, ringCold := spec.Variables[ringColdKnob]
	if ringCold {
		if _, set := opts.Constants[ringColdKnob]; !set {
			if err := spec.Variables[ringColdKnob].Set(uint64(RingColdAfter)); err != nil {
				return nil, fmt.Errorf("%s: setting knob %s: %w", opts.Probe, ringColdKnob, err)
			}
		}
	}
	for name, size := range opts.MapSizes {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("%s: BPF object has no map %q", opts.Probe, name)
		}
		ms.MaxEntries = size
	}

	mapsOnly := spec.Copy()
	mapsOnly.Programs = nil
	coll, err := ebpf.NewCollection(mapsOnly)
	if err != nil {
		return nil, fmt.Errorf("%s: creating BPF maps: %w", opts.Probe, explain(err))
	}
	obj := &Object{Probe: opts.Probe, Maps: coll.Maps, ringCold: ringCold}
	for name := range coll.Maps {
		obj.MapNames = append(obj.MapNames, name)
	}
	slices.Sort(obj.MapNames)

	for _, def := range opts.Programs {
		st := ProgramStatus{Probe: opts.Probe, Name: def.Name, Required: def.Required}
		var attached *Program
		for _, h := range def.Hooks {
			if slices.Contains(opts.Disabled, h.Kind) {
				st.Tried = append(st.Tried, fmt.Sprintf("%s %s: disabled by configuration", h.Kind, h.Target))
				continue
			}
			p, err := obj.loadAndAttach(spec, h)
			if err != nil {
				st.Tried = append(st.Tried, fmt.Sprintf("%s %s: %v", h.Kind, h.Target, explain(err)))
				continue
			}
			st.Attached, st.Hook, st.Target, st.BPFProgram = true, h.Kind, h.Target, h.Program
			st.Detail = p.Detail
			p.ProgramStatus = st
			attached = p
			break
		}
		if attached != nil {
			obj.Programs = append(obj.Programs, attached)
			continue
		}
		if def.Required {
			_ = obj.Close()
			return nil, fmt.Errorf("%s: required program %s could not attach: %s", opts.Probe, def.Name, strings.Join(st.Tried, "; "))
		}
		obj.Skipped = append(obj.Skipped, st)
	}
	if len(opts.Later) > 0 {
		later := spec.Copy()
		later.Programs = map[string]*ebpf.ProgramSpec{}
		for _, name := range opts.Later {
			ps, ok := spec.Programs[name]
			if !ok {
				_ = obj.Close()
				return nil, fmt.Errorf("%s: BPF object has no program %q (LoadOptions.Later)", opts.Probe, name)
			}
			later.Programs[name] = ps
		}
		obj.later = later
	}
	return obj, nil
}

func (o *Object) loadAndAttach(spec *ebpf.CollectionSpec, h Hook) (*Program, error) {
	a, ok := attachers[h.Kind]
	if !ok {
		return nil, fmt.Errorf("hook kind %q has no attacher", h.Kind)
	}
	prog, err := loadProgram(spec, o.Maps, h.Program)
	if err != nil {
		return nil, err
	}
	links, detail, err := a(prog, spec.Programs[h.Program], h)
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &Program{Prog: prog, links: links, ProgramStatus: ProgramStatus{Detail: detail}}, nil
}

// LoadProgram loads one program named in LoadOptions.Later against the
// object's maps, without attaching it: for programs attached later, to
// targets found at run time (see UprobeSet). The caller owns the returned
// program.
func (o *Object) LoadProgram(name string) (*ebpf.Program, error) {
	if o.later == nil || o.later.Programs[name] == nil {
		return nil, fmt.Errorf("program %q was not kept for loading after Load (LoadOptions.Later)", name)
	}
	return loadProgram(o.later, o.Maps, name)
}

func loadProgram(spec *ebpf.CollectionSpec, maps map[string]*ebpf.Map, name string) (*ebpf.Program, error) {
	ps, ok := spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("BPF object has no program %q", name)
	}
	one := &ebpf.CollectionSpec{
		Maps:      spec.Maps,
		Programs:  map[string]*ebpf.ProgramSpec{name: ps},
		Variables: spec.Variables,
		Types:     spec.Types,
		ByteOrder: spec.ByteOrder,
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: maps})
	if err != nil {
		return nil, err
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	return prog, nil
}

// explain keeps the verifier's last lines, which say why, instead of the
// whole log.
func explain(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%w", ve)
	}
	return err
}
