package eventrules

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/proc"
)

// Procs is what the evaluator needs from the process cache (proc.Cache
// implements it): the process itself and its ancestry.
type Procs interface {
	Get(pid uint32) (proc.Process, bool)
	Ancestors(pid uint32, depth int) []proc.Process
}

// evalCtx is the CEL activation for one event. Fields are read lazily, so a
// rule that never looks at the parent never pays for the cache lookup.
type evalCtx struct {
	ev    event.Event
	h     *event.Header
	rv    reflect.Value
	sch   *schema
	procs Procs
	depth int

	selfDone, ancDone, parentDone bool
	selfP                         proc.Process
	parentP                       proc.Process
	anc                           []proc.Process

	// Field values are computed once per event: many rules read the same
	// fields. valGen[i] == gen marks vals[i] as current.
	vals   []ref.Val
	valGen []uint32
	gen    uint32

	// steps holds the events of earlier sequence steps by step name; names
	// "<step>.<field>" resolve against them.
	steps map[string]*evalCtx
}

var _ interpreter.Activation = (*evalCtx)(nil)

// newCtx is a one-off context (no value cache).
func newCtx(ev event.Event, procs Procs, depth int) *evalCtx {
	c := &evalCtx{}
	c.reset(ev, procs, depth)
	return c
}

// enableCache makes a reused context cache field values per event.
func (c *evalCtx) enableCache() {
	if c.sch != nil && len(c.vals) < len(c.sch.fields) {
		c.vals, c.valGen = make([]ref.Val, len(c.sch.fields)+8), make([]uint32, len(c.sch.fields)+8)
	}
}

func (c *evalCtx) reset(ev event.Event, procs Procs, depth int) {
	vals, valGen, gen := c.vals, c.valGen, c.gen+1
	*c = evalCtx{ev: ev, h: ev.EventHeader(), procs: procs, depth: depth, sch: schemaFor(ev.EventKind())}
	if gen == 0 { // wrapped: forget every cached value
		clear(valGen)
		gen = 1
	}
	c.vals, c.valGen, c.gen = vals, valGen, gen
	rv := reflect.ValueOf(ev)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	c.rv = rv
}

// ResolveName implements interpreter.Activation.
func (c *evalCtx) ResolveName(name string) (any, bool) {
	if c.sch != nil {
		if f := c.sch.byName[name]; f != nil {
			return c.value(f), true
		}
	}
	if c.steps != nil {
		if step, rest, ok := strings.Cut(name, "."); ok {
			if sc := c.steps[step]; sc != nil {
				return sc.ResolveName(rest)
			}
		}
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (c *evalCtx) Parent() interpreter.Activation { return nil }

func (c *evalCtx) self() proc.Process {
	if !c.selfDone {
		c.selfDone = true
		if c.procs != nil {
			if p, ok := c.procs.Get(c.h.PID); ok && p.Describes(c.h.PID, c.h.TID, c.h.StartNS, c.h.Comm) {
				c.selfP = p
			}
		}
	}
	return c.selfP
}

func (c *evalCtx) exe() string {
	if c.h.Exe != "" {
		return c.h.Exe
	}
	return c.self().Exe
}

func (c *evalCtx) ancestors() []proc.Process {
	if !c.ancDone {
		c.ancDone = true
		if c.procs != nil && c.depth > 0 {
			c.anc = c.procs.Ancestors(c.h.PID, c.depth)
		}
	}
	return c.anc
}

func (c *evalCtx) parent() proc.Process {
	if c.parentDone {
		return c.parentP
	}
	c.parentDone = true
	c.parentP = proc.Process{PID: c.h.PPID}
	var a []proc.Process
	if c.ancDone {
		a = c.anc
	} else if c.procs != nil && c.depth > 0 {
		a = c.procs.Ancestors(c.h.PID, 1)
	}
	// The kernel filled ppid (and the parent's comm) at event time: a cached
	// ancestor under another pid is stale.
	if len(a) > 0 && (c.h.PPID == 0 || a[0].PID == c.h.PPID) {
		c.parentP = a[0]
	} else if c.procs != nil && c.h.PPID != 0 {
		if p, ok := c.procs.Get(c.h.PPID); ok {
			c.parentP = p
		}
	}
	if c.parentP.Comm == "" {
		c.parentP.Comm = c.h.ParentComm
	}
	return c.parentP
}

// procID is "<pid>@<start tick>": probes report the start time either
// exactly (from the kernel) or at clock-tick precision (from /proc), so the
// identity uses ticks.
func (c *evalCtx) procID() string {
	st := c.h.StartNS
	if st == 0 {
		st = c.self().StartNS
	}
	return strconv.FormatUint(uint64(c.h.PID), 10) + "@" + strconv.FormatUint(st/tickNS, 10)
}

const tickNS = 10_000_000
