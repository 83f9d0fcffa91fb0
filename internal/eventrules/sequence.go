package eventrules

import (
	"container/list"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/vigilproject/vigil/internal/event"
)

// seqRuntime is the live state of one sequence rule: at most one partial
// match per key, in creation order (oldest first) for expiry and eviction.
type seqRuntime struct {
	s      *Sequence
	states map[string]*seqState
	order  *list.List
}

type seqState struct {
	key    string
	next   int // index of the step waiting to match
	start  time.Time
	events []event.Event
	elem   *list.Element
}

func newSeqRuntime(s *Sequence) *seqRuntime {
	return &seqRuntime{s: s, states: map[string]*seqState{}, order: list.New()}
}

func evTime(ev event.Event) time.Time { return ev.EventHeader().Time }

// sequenceEvent advances every sequence with one event, in time order.
func (e *Engine) sequenceEvent(ev event.Event) {
	t := evTime(ev)
	if t.Before(e.lastTime) {
		e.m.late.Inc()
	} else {
		e.lastTime = t
	}
	k := ev.EventKind()
	// Most events (every exec and exit, for the default pack) only matter
	// to sequences with partial matches: without any, skip the context.
	needed := false
	for _, s := range e.rs.Sequences {
		rt := e.seqs[s.Name]
		e.expire(rt, t)
		if len(rt.states) > 0 || s.Steps[0].Kind == k {
			needed = true
		}
	}
	if !needed {
		return
	}
	opts := e.rs.Opts
	cur := &e.seqCtx
	cur.reset(ev, e.procs, opts.AncestryDepth)
	cur.enableCache()
	defer func() { cur.ev, cur.h, cur.rv, cur.anc, cur.steps = nil, nil, reflect.Value{}, nil, nil }()
	for _, s := range e.rs.Sequences {
		rt := e.seqs[s.Name]
		e.expire(rt, t)
		if len(rt.states) == 0 && s.Steps[0].Kind != k {
			continue // nothing to advance, cancel or end; not a first step
		}
		if s.Until != nil && s.Until.Kind == k && len(rt.states) > 0 && passGuards(s.Until.guards, cur) {
			if key, ok := e.key(s.Until.by, cur, s.Name); ok {
				// An until older than the partial match (delivered late) does
				// not cancel it: only what happens after the first step does.
				if st := rt.states[key]; st != nil && !t.Before(st.start) && e.evalBool(s.Until.cond, e.withSteps(cur, s, st), s.Name) {
					e.remove(rt, st, "until")
				}
			}
		}
		advanced := ""
		for i := len(s.Steps) - 1; i >= 1 && len(rt.states) > 0; i-- {
			step := s.Steps[i]
			if step.Kind != k || !passGuards(step.guards, cur) {
				continue
			}
			key, ok := e.key(step.by, cur, s.Name)
			if !ok {
				continue
			}
			st := rt.states[key]
			if st == nil || st.next != i {
				continue
			}
			if t.Sub(st.start) > s.Window {
				e.remove(rt, st, "window")
				continue
			}
			if t.Before(evTime(st.events[len(st.events)-1])) {
				continue // steps match in time order
			}
			if !e.evalBool(step.cond, e.withSteps(cur, s, st), s.Name) {
				continue
			}
			st.events = append(st.events, ev)
			st.next++
			advanced = key
			if st.next == len(s.Steps) {
				e.complete(rt, st, cur)
			}
		}
		if first := s.Steps[0]; first.Kind == k && passGuards(first.guards, cur) && e.evalBool(first.cond, cur, s.Name) {
			if key, ok := e.key(first.by, cur, s.Name); ok && key != advanced {
				if st := rt.states[key]; st != nil {
					if st.next == 1 {
						// A newer first step restarts the window.
						st.events[0], st.start = ev, t
						rt.order.MoveToBack(st.elem)
					}
				} else {
					e.insert(rt, &seqState{key: key, next: 1, start: t, events: []event.Event{ev}})
				}
			}
		}
		if k == event.KindExit && s.exitBy != nil && len(rt.states) > 0 {
			if key, ok := e.key(s.exitBy, cur, s.Name); ok {
				if st := rt.states[key]; st != nil {
					e.remove(rt, st, "exit")
				}
			}
		}
	}
}

// withSteps returns an activation seeing cur unprefixed and the state's
// captured events as "<step>.<field>".
func (e *Engine) withSteps(cur *evalCtx, s *Sequence, st *seqState) *evalCtx {
	c := *cur
	c.steps = make(map[string]*evalCtx, len(st.events))
	for i, ev := range st.events {
		c.steps[s.Steps[i].Name] = newCtx(ev, e.procs, e.rs.Opts.AncestryDepth)
	}
	return &c
}

func (e *Engine) complete(rt *seqRuntime, st *seqState, cur *evalCtx) {
	s := rt.s
	e.unlink(rt, st)
	rc := e.counters[s.Name]
	rc.matches.Inc()
	act := e.withSteps(cur, s, st)
	e.fire(firing{name: s.Name, desc: s.Desc, severity: s.Severity, tags: s.Tags, kind: "sequence",
		suppress: s.suppress, groupBy: s.groupBy, output: s.output, act: act, events: st.events})
}

// key evaluates key expressions; a key that fails to evaluate matches
// nothing.
func (e *Engine) key(by []cel.Program, c *evalCtx, rule string) (string, bool) {
	var b strings.Builder
	for i, p := range by {
		v, _, err := p.Eval(c)
		if err != nil {
			if rc := e.counters[rule]; rc != nil {
				rc.errors.Inc()
			}
			return "", false
		}
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(formatVal(v))
	}
	return b.String(), true
}

func (e *Engine) insert(rt *seqRuntime, st *seqState) {
	opts := e.rs.Opts
	if len(rt.states) >= opts.MaxKeysPerRule {
		e.remove(rt, rt.order.Front().Value.(*seqState), "capacity")
	}
	if e.seqTotal.Load() >= int64(opts.MaxKeysTotal) {
		victim := rt
		if victim.order.Len() == 0 {
			for _, o := range e.seqs {
				if o.order.Len() > 0 {
					victim = o
					break
				}
			}
		}
		if f := victim.order.Front(); f != nil {
			e.remove(victim, f.Value.(*seqState), "capacity")
		}
	}
	st.elem = rt.order.PushBack(st)
	rt.states[st.key] = st
	e.seqTotal.Add(1)
}

func (e *Engine) unlink(rt *seqRuntime, st *seqState) {
	rt.order.Remove(st.elem)
	delete(rt.states, st.key)
	e.seqTotal.Add(-1)
}

func (e *Engine) remove(rt *seqRuntime, st *seqState, reason string) {
	e.unlink(rt, st)
	e.m.evictions.WithLabelValues(rt.s.Name, reason).Inc()
}

// expire removes states whose window ended before t.
func (e *Engine) expire(rt *seqRuntime, t time.Time) {
	for f := rt.order.Front(); f != nil; f = rt.order.Front() {
		st := f.Value.(*seqState)
		if t.Sub(st.start) <= rt.s.Window {
			return
		}
		e.remove(rt, st, "window")
	}
}

// drainLocked processes buffered events older than the reorder window (all
// of them when all is set).
func (e *Engine) drainLocked(now time.Time, all bool) {
	cut := now.Add(-e.reorder.window)
	for e.reorder.Len() > 0 {
		if !all && e.reorder.oldest().After(cut) {
			return
		}
		e.sequenceEvent(e.reorder.pop())
	}
}

// reorderBuf holds events for sequences for a short window and releases
// them in event-time order.
type reorderBuf struct {
	window time.Duration
	items  []reorderItem
	seq    uint64
}

type reorderItem struct {
	ev  event.Event
	t   time.Time // the event's time, read once
	ns  int64     // t as nanoseconds, the heap's key
	seq uint64
}

const maxReorder = 65536

// The buffer is a binary min-heap on (time, arrival), written out for its
// one item type (container/heap would box every item and call through
// interfaces on each comparison).

func (r *reorderBuf) Len() int { return len(r.items) }

func (r *reorderBuf) less(i, j int) bool {
	a, b := &r.items[i], &r.items[j]
	if a.ns == b.ns {
		return a.seq < b.seq
	}
	return a.ns < b.ns
}

// push adds ev; it reports true when the buffer is over its bound and the
// caller must pop one now.
func (r *reorderBuf) push(ev event.Event) bool {
	r.seq++
	t := evTime(ev)
	ns := int64(math.MinInt64) // an event without a time sorts first, as time.Time{} does
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	r.items = append(r.items, reorderItem{ev: ev, t: t, ns: ns, seq: r.seq})
	for j := len(r.items) - 1; j > 0; {
		i := (j - 1) / 2
		if !r.less(j, i) {
			break
		}
		r.items[i], r.items[j] = r.items[j], r.items[i]
		j = i
	}
	return len(r.items) > maxReorder
}

// oldest is the time of the next event pop returns.
func (r *reorderBuf) oldest() time.Time { return r.items[0].t }

func (r *reorderBuf) pop() event.Event {
	n := len(r.items) - 1
	ev := r.items[0].ev
	r.items[0] = r.items[n]
	r.items[n] = reorderItem{}
	r.items = r.items[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if rr := l + 1; rr < n && r.less(rr, l) {
			m = rr
		}
		if !r.less(m, i) {
			break
		}
		r.items[i], r.items[m] = r.items[m], r.items[i]
		i = m
	}
	return ev
}
