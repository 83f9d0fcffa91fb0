package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// Hook is one way of running a program: the program in the object that
// implements it and the kernel hook it attaches to.
type Hook struct {
	Kind    HookKind
	Program string // program name in the BPF object
	Target  string // "group/name" for tracepoints, the event or function name otherwise
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
}

// Program is an attached program.
type Program struct {
	ProgramStatus
	Prog *ebpf.Program
	link link.Link
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
	ring     atomic.Pointer[ringbuf.Reader]
	ringMu   sync.RWMutex // held while reading the fill, so the reader is not closed under it
}

// RingFill reports the bytes waiting in the events ring buffer and its size,
// while a reader is open.
func (o *Object) RingFill() (used, size int, ok bool) {
	o.ringMu.RLock()
	defer o.ringMu.RUnlock()
	rd := o.ring.Load()
	if rd == nil {
		return 0, 0, false
	}
	return rd.AvailableBytes(), rd.BufferSize(), true
}

// Status lists every logical program, attached or not.
func (o *Object) Status() []ProgramStatus {
	out := make([]ProgramStatus, 0, len(o.Programs)+len(o.Skipped))
	for _, p := range o.Programs {
		out = append(out, p.ProgramStatus)
	}
	return append(out, o.Skipped...)
}

// Close detaches every program and releases every map.
func (o *Object) Close() error {
	var errs []error
	for _, p := range o.Programs {
		if p.link != nil {
			errs = append(errs, p.link.Close())
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
	obj := &Object{Probe: opts.Probe, Maps: coll.Maps}
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
			p, err := loadAndAttach(spec, obj.Maps, h)
			if err != nil {
				st.Tried = append(st.Tried, fmt.Sprintf("%s %s: %v", h.Kind, h.Target, explain(err)))
				continue
			}
			st.Attached, st.Hook, st.Target, st.BPFProgram = true, h.Kind, h.Target, h.Program
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
	return obj, nil
}

func loadAndAttach(spec *ebpf.CollectionSpec, maps map[string]*ebpf.Map, h Hook) (*Program, error) {
	ps, ok := spec.Programs[h.Program]
	if !ok {
		return nil, fmt.Errorf("BPF object has no program %q", h.Program)
	}
	if h.Kind == Tracepoint {
		if err := EnsureTracefs(); err != nil {
			return nil, err
		}
	}
	one := &ebpf.CollectionSpec{
		Maps:      spec.Maps,
		Programs:  map[string]*ebpf.ProgramSpec{h.Program: ps},
		Variables: spec.Variables,
		Types:     spec.Types,
		ByteOrder: spec.ByteOrder,
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: maps})
	if err != nil {
		return nil, err
	}
	prog := coll.DetachProgram(h.Program)
	coll.Close()
	l, err := attach(prog, h)
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &Program{Prog: prog, link: l}, nil
}

func attach(p *ebpf.Program, h Hook) (link.Link, error) {
	switch h.Kind {
	case TpBTF, Fentry:
		return link.AttachTracing(link.TracingOptions{Program: p})
	case LSM:
		return link.AttachLSM(link.LSMOptions{Program: p})
	case RawTP:
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.Target, Program: p})
	case Tracepoint:
		group, name, ok := strings.Cut(h.Target, "/")
		if !ok {
			return nil, fmt.Errorf("tracepoint target %q is not group/name", h.Target)
		}
		return link.Tracepoint(group, name, p, nil)
	case Kprobe:
		return link.Kprobe(h.Target, p, nil)
	default:
		return nil, fmt.Errorf("hook kind %s is not attached by the generic loader", h.Kind)
	}
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
