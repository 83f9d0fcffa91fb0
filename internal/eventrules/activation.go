package eventrules

import (
	"reflect"
	"strings"

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

	selfDone, ancDone bool
	selfP             proc.Process
	anc               []proc.Process

	// steps holds the events of earlier sequence steps by step name; names
	// "<step>.<field>" resolve against them.
	steps map[string]*evalCtx
}

var _ interpreter.Activation = (*evalCtx)(nil)

func newCtx(ev event.Event, procs Procs, depth int) *evalCtx {
	c := &evalCtx{}
	c.reset(ev, procs, depth)
	return c
}

func (c *evalCtx) reset(ev event.Event, procs Procs, depth int) {
	*c = evalCtx{ev: ev, h: ev.EventHeader(), procs: procs, depth: depth, sch: schemaFor(ev.EventKind())}
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
			return f.get(c), true
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
			if p, ok := c.procs.Get(c.h.PID); ok && (p.StartNS == 0 || c.h.StartNS == 0 || sameStart(p.StartNS, c.h.StartNS)) {
				c.selfP = p
			}
		}
	}
	return c.selfP
}

// sameStart compares start times at clock-tick granularity: /proc gives them
// in ticks, the kernel in ns.
func sameStart(a, b uint64) bool {
	const tick = 10_000_000
	d := int64(a/tick) - int64(b/tick)
	return d >= -1 && d <= 1
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
	if a := c.ancestors(); len(a) > 0 {
		return a[0]
	}
	if c.procs != nil && c.h.PPID != 0 {
		if p, ok := c.procs.Get(c.h.PPID); ok {
			return p
		}
	}
	return proc.Process{PID: c.h.PPID}
}
