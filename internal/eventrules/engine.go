package eventrules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/event"
)

// Source is the name event-rule alerts are sent under.
const Source = "event-rules"

// Sink receives alerts; *alert.Dispatcher is one.
type Sink interface {
	Send(source string, alerts []alert.Alert)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(source string, alerts []alert.Alert)

// Send implements Sink.
func (f SinkFunc) Send(source string, alerts []alert.Alert) { f(source, alerts) }

// Tee sends to every sink.
type Tee []Sink

// Send implements Sink.
func (t Tee) Send(source string, alerts []alert.Alert) {
	for _, s := range t {
		s.Send(source, alerts)
	}
}

// Engine evaluates a ruleset on events and sends alerts to a sink.
// Handle and Tick may be called from any goroutine; they serialise.
type Engine struct {
	procs Procs
	sink  Sink
	m     *engineMetrics
	now   func() time.Time

	mu       sync.Mutex
	rs       *Ruleset
	counters map[string]*ruleCounters
	kindCnt  map[event.Kind]prometheus.Counter
	ctx      evalCtx
	seqCtx   evalCtx
	seqs     map[string]*seqRuntime // by sequence name
	seqTotal atomic.Int64
	reorder  reorderBuf
	lastTime time.Time                // newest event time processed by sequences
	bursts   map[string]*burstRuntime // by rule name
	dedup    map[string]*dedupEntry
	dedupLen atomic.Int64

	// index finds the candidate rules of an event (built by Install from
	// the rules' guards); linear evaluates every rule of the kind instead
	// (benchmarks and the equivalence test compare the two).
	index   map[event.Kind]*ruleIndex
	scratch candScratch
	linear  bool
}

// NewEngine returns an engine with no rules. procs may be nil (no process
// context beyond what events carry).
func NewEngine(procs Procs, sink Sink) *Engine {
	e := &Engine{procs: procs, sink: sink, now: time.Now, seqs: map[string]*seqRuntime{}, dedup: map[string]*dedupEntry{}, bursts: map[string]*burstRuntime{},
		counters: map[string]*ruleCounters{}, kindCnt: map[event.Kind]prometheus.Counter{}}
	e.m = newMetrics(e)
	return e
}

// Collectors returns the engine's self-metrics.
func (e *Engine) Collectors() []prometheus.Collector { return e.m.collectors() }

// Ruleset returns the rules in force.
func (e *Engine) Ruleset() *Ruleset {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rs
}

// Install puts rs in force atomically. Sequence state of sequences whose
// definition is unchanged is kept; other state is dropped and counted.
func (e *Engine) Install(rs *Ruleset) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Release buffered events under the old rules first.
	e.drainLocked(time.Time{}, true)
	keep := map[string]*seqRuntime{}
	for _, s := range rs.Sequences {
		if old := e.seqs[s.Name]; old != nil && old.s.hash == s.hash {
			old.s = s
			keep[s.Name] = old
		}
	}
	for name, old := range e.seqs {
		if keep[name] == nil {
			n := old.order.Len()
			if n > 0 {
				e.m.evictions.WithLabelValues(name, "reload").Add(float64(n))
				e.seqTotal.Add(-int64(n))
			}
		}
	}
	e.seqs = map[string]*seqRuntime{}
	for _, s := range rs.Sequences {
		if rt := keep[s.Name]; rt != nil {
			e.seqs[s.Name] = rt
		} else {
			e.seqs[s.Name] = newSeqRuntime(s)
		}
	}
	bursts := map[string]*burstRuntime{}
	for _, r := range rs.Rules {
		if r.threshold == nil {
			continue
		}
		if old := e.bursts[r.Name]; old != nil && old.r.hash == r.hash {
			old.r = r
			bursts[r.Name] = old
		} else {
			bursts[r.Name] = newBurstRuntime(r)
		}
	}
	for name, old := range e.bursts {
		if bursts[name] == nil && old.order.Len() > 0 {
			e.m.evictions.WithLabelValues(name, "reload").Add(float64(old.order.Len()))
			e.seqTotal.Add(-int64(old.order.Len()))
		}
	}
	e.bursts = bursts
	e.counters = map[string]*ruleCounters{}
	for _, r := range rs.Rules {
		e.counters[r.Name] = e.m.forRule(r.Name)
	}
	for _, s := range rs.Sequences {
		e.counters[s.Name] = e.m.forRule(s.Name)
	}
	e.reorder.window = rs.Opts.ReorderWindow
	e.index = make(map[event.Kind]*ruleIndex, len(rs.byKind))
	for k, rules := range rs.byKind {
		e.index[k] = buildIndex(rules)
	}
	e.rs = rs
	e.m.loaded.WithLabelValues("rule").Set(float64(len(rs.Rules)))
	e.m.loaded.WithLabelValues("sequence").Set(float64(len(rs.Sequences)))
}

// Handle evaluates one event.
func (e *Engine) Handle(ev event.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.rs
	if rs == nil {
		return
	}
	k := ev.EventKind()
	cnt := e.kindCnt[k]
	if cnt == nil {
		cnt = e.m.events.WithLabelValues(string(k))
		e.kindCnt[k] = cnt
	}
	cnt.Inc()
	if rules := rs.byKind[k]; len(rules) > 0 {
		c := &e.ctx
		c.reset(ev, e.procs, rs.Opts.AncestryDepth)
		c.enableCache()
		if ix := e.index[k]; ix != nil && !e.linear {
			for _, i := range ix.candidates(c, &e.scratch) {
				if r := rules[i]; passGuards(ix.rest[i], c) && e.evalBool(r.cond, c, r.Name) {
					e.matchRule(r, c)
				}
			}
		} else {
			for _, r := range rules {
				if passGuards(r.guards, c) && e.evalBool(r.cond, c, r.Name) {
					e.matchRule(r, c)
				}
			}
		}
		c.ev, c.h, c.rv, c.anc, c.steps = nil, nil, reflect.Value{}, nil, nil
	}
	if rs.seqKinds[k] {
		if e.reorder.window <= 0 {
			e.sequenceEvent(ev)
			return
		}
		if e.reorder.push(ev) {
			e.m.reorderOver.Inc()
			e.sequenceEvent(e.reorder.pop())
		}
		e.drainLocked(e.now(), false)
	}
}

func (e *Engine) evalBool(prg cel.Program, act interpreter.Activation, rule string) bool {
	if prg == nil {
		return true
	}
	v, _, err := prg.Eval(act)
	if err != nil {
		if c := e.counters[rule]; c != nil {
			c.errors.Inc()
		}
		return false
	}
	return v == types.True
}

func (e *Engine) matchRule(r *Rule, c *evalCtx) {
	rc := e.counters[r.Name]
	rc.matches.Inc()
	for _, ex := range r.exceptions {
		if e.evalBool(ex.prg, c, r.Name) {
			rc.excepted.Inc()
			return
		}
	}
	if r.threshold != nil && !e.countThreshold(r, c) {
		return
	}
	e.fire(firing{
		name: r.Name, desc: r.Desc, severity: r.Severity, tags: r.Tags, kind: "rule",
		suppress: r.suppress, groupBy: r.groupBy, output: r.output, act: c, events: []event.Event{c.ev},
	})
}

// firing is one match on its way to an alert.
type firing struct {
	name, desc, severity, kind string
	tags                       []string
	suppress                   time.Duration
	groupBy                    []cel.Program
	output                     *template
	act                        interpreter.Activation
	events                     []event.Event // the matching event, or every step's
}

type dedupEntry struct {
	alert     alert.Alert
	windowEnd time.Time
	lastSeen  time.Time
	lastFlush time.Time
	repeats   int
	reported  int
	rule      string
}

const maxDedupEntries = 10000

func (e *Engine) fire(f firing) {
	rc := e.counters[f.name]
	last := f.events[len(f.events)-1]
	h := last.EventHeader()
	evTime := h.Time
	now := e.now()
	if evTime.IsZero() {
		evTime = now
	}
	var groupVals []string
	for _, g := range f.groupBy {
		v, _, err := g.Eval(f.act)
		if err != nil {
			groupVals = append(groupVals, "<error>")
			continue
		}
		groupVals = append(groupVals, formatVal(v))
	}
	// The dedup key first: a suppressed repeat builds no alert.
	var container, workload string
	if h.Container != "" {
		container = shortID(h.Container)
	} else if strings.HasSuffix(h.Unit, ".service") {
		// Services only: session and transient scopes (session-42.scope,
		// run-r1234.scope) would make the label unbounded.
		workload = h.Unit
	}
	key := f.name + "\x00" + container + "\x00" + workload + "\x00" + strings.Join(groupVals, "\x00")
	if d := e.dedup[key]; d != nil && !e.rs.Opts.NoSuppression {
		if now.Before(d.windowEnd) {
			d.repeats++
			d.lastSeen = evTime
			rc.suppressed.Inc()
			return
		}
		e.flushEntry(d, now)
		delete(e.dedup, key)
		e.dedupLen.Store(int64(len(e.dedup)))
	}
	labels := map[string]string{"alertname": f.name, "rule": f.name, "severity": f.severity}
	if e.rs.Opts.Host != "" {
		labels["host"] = e.rs.Opts.Host
	}
	if container != "" {
		labels["container"] = container
	} else if workload != "" {
		labels["workload"] = workload
	}
	if len(groupVals) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(groupVals, "\x00")))
		labels["group"] = hex.EncodeToString(sum[:6])
	}
	summary := f.output.render(f.act)
	if summary == "" {
		summary = f.desc
	}
	ann := map[string]string{
		"summary":    summary,
		"event_kind": string(last.EventKind()),
		"rule_type":  f.kind,
		"pid":        strconv.FormatUint(uint64(h.PID), 10),
		"comm":       h.Comm,
	}
	if f.desc != "" {
		ann["description"] = f.desc
	}
	if h.Exe != "" {
		ann["exe"] = h.Exe
	}
	if h.Container != "" {
		ann["container_id"] = h.Container
	}
	if len(f.tags) > 0 {
		ann["tags"] = strings.Join(f.tags, ",")
	}
	if len(groupVals) > 0 {
		ann["group"] = strings.Join(groupVals, " ")
	}
	if f.kind == "sequence" {
		ann["events"] = eventsJSON(f.events)
	} else {
		ann["event"] = eventsJSON(f.events[:1])
	}
	a := alert.Alert{Labels: labels, Annotations: ann, StartsAt: evTime, EndsAt: now.Add(e.rs.Opts.ResolveAfter)}
	if f.suppress > 0 && !e.rs.Opts.NoSuppression {
		if len(e.dedup) >= maxDedupEntries {
			e.evictDedup(now)
		}
		e.dedup[key] = &dedupEntry{alert: a, windowEnd: now.Add(f.suppress), lastSeen: evTime, lastFlush: now, rule: f.name}
		e.dedupLen.Store(int64(len(e.dedup)))
	}
	rc.alerts.Inc()
	e.sink.Send(Source, []alert.Alert{a})
}

// flushEntry sends the repeat count of a dedup entry if it has news.
func (e *Engine) flushEntry(d *dedupEntry, now time.Time) {
	if d.repeats <= d.reported {
		return
	}
	d.reported = d.repeats
	d.lastFlush = now
	a := d.alert
	a.Annotations = make(map[string]string, len(d.alert.Annotations)+2)
	for k, v := range d.alert.Annotations {
		a.Annotations[k] = v
	}
	a.Annotations["suppressed_repeats"] = strconv.Itoa(d.repeats)
	a.Annotations["last_seen"] = d.lastSeen.UTC().Format(time.RFC3339Nano)
	a.EndsAt = now.Add(e.rs.Opts.ResolveAfter)
	if c := e.counters[d.rule]; c != nil {
		c.alerts.Inc()
	}
	e.sink.Send(Source, []alert.Alert{a})
}

func (e *Engine) evictDedup(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, d := range e.dedup {
		if oldestKey == "" || d.windowEnd.Before(oldest) {
			oldestKey, oldest = k, d.windowEnd
		}
	}
	if d := e.dedup[oldestKey]; d != nil {
		e.flushEntry(d, now)
		delete(e.dedup, oldestKey)
		e.dedupLen.Store(int64(len(e.dedup)))
		e.m.dedupEvict.Inc()
	}
}

// flushDedup reports repeat counts every flushEvery and ends windows.
func (e *Engine) flushDedup(now time.Time) {
	for k, d := range e.dedup {
		due := !now.Before(d.windowEnd)
		if due || (d.repeats > d.reported && now.Sub(d.lastFlush) >= flushEvery) {
			e.flushEntry(d, now)
		}
		if due {
			delete(e.dedup, k)
		}
	}
	e.dedupLen.Store(int64(len(e.dedup)))
}

// flushEvery is how often repeat counts inside a long suppression window
// are reported.
const flushEvery = 30 * time.Second

const maxEventJSON = 4096

func eventsJSON(evs []event.Event) string {
	var b []byte
	var err error
	if len(evs) == 1 {
		b, err = json.Marshal(evs[0])
	} else {
		b, err = json.Marshal(evs)
	}
	if err != nil {
		return ""
	}
	if len(b) > maxEventJSON {
		return string(b[:maxEventJSON]) + "..."
	}
	return string(b)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Tick releases reordered events that are old enough, expires sequence
// state and reports suppressed repeats. Run calls it periodically.
func (e *Engine) Tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rs == nil {
		return
	}
	now := e.now()
	e.drainLocked(now, false)
	// Expire by wall clock too, so state ends even when no events come.
	wm := now.Add(-e.reorder.window)
	for _, rt := range e.seqs {
		e.expire(rt, wm)
	}
	for _, br := range e.bursts {
		e.expireBursts(br, now)
	}
	e.flushDedup(now)
}

// Flush processes everything buffered and reports pending repeat counts
// (on shutdown and in tests).
func (e *Engine) Flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rs == nil {
		return
	}
	e.drainLocked(time.Time{}, true)
	now := e.now()
	for _, d := range e.dedup {
		e.flushEntry(d, now)
	}
}

// Run evaluates events from sub until ctx ends. It wakes for the next
// event held in the reorder buffer and otherwise only every idleTick (to
// expire state and flush repeat counts), so an idle engine costs no timer
// ticks to speak of.
func (e *Engine) Run(ctx context.Context, events <-chan event.Event) error {
	t := time.NewTimer(idleTick)
	defer t.Stop()
	deadline := e.now().Add(idleTick)
	// arm moves the timer earlier when a buffered event is due sooner.
	arm := func(now time.Time) {
		if next := e.nextDeadline(now); next.Before(deadline) {
			deadline = next
			t.Reset(max(next.Sub(now), minTick))
		}
	}
	for {
		select {
		case <-ctx.Done():
			e.Flush()
			return nil
		case ev, ok := <-events:
			if !ok {
				e.Flush()
				return nil
			}
			e.Handle(ev)
			// Probes publish what they read from a ring buffer in bursts.
			// Woken for one event, let the rest of the burst queue up and
			// take it in one go: being woken per event (a futex wake and a
			// scheduler round each) costs more than evaluating it.
			time.Sleep(batchWait)
			for n := 0; n < maxBatch; n++ {
				select {
				case ev, ok := <-events:
					if !ok {
						e.Flush()
						return nil
					}
					e.Handle(ev)
				default:
					n = maxBatch
				}
			}
			arm(e.now())
		case <-t.C:
			e.Tick()
			now := e.now()
			deadline = e.nextDeadline(now)
			t.Reset(max(deadline.Sub(now), minTick))
		}
	}
}

const (
	// idleTick bounds how late state expiry and repeat-count flushes run.
	idleTick = time.Second
	// minTick keeps a burst of due events from spinning the timer: events
	// come from the probes in bursts (their rings are read every 50 ms), so
	// releasing them from the reorder buffer every 20 ms at most keeps the
	// wake-ups down at the cost of up to 20 ms on sequence alerts.
	minTick = 20 * time.Millisecond
	// batchWait is how long Run lets a burst of events queue up after the
	// first one woke it.
	batchWait = 2 * time.Millisecond
	// maxBatch bounds a batch, so the timer and shutdown are looked at
	// under a sustained flood too.
	maxBatch = 4096
)

// nextDeadline is when Tick must next run: when the oldest buffered event
// leaves the reorder window, at the latest idleTick from now.
func (e *Engine) nextDeadline(now time.Time) time.Time {
	next := now.Add(idleTick)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reorder.Len() > 0 {
		if due := e.reorder.oldest().Add(e.reorder.window); due.Before(next) {
			return due
		}
	}
	return next
}

// SetProcs sets the process cache used for proc.*, parent.* and ancestry.
func (e *Engine) SetProcs(p Procs) {
	e.mu.Lock()
	e.procs = p
	e.mu.Unlock()
}

// SetSink sets where alerts go.
func (e *Engine) SetSink(s Sink) {
	e.mu.Lock()
	e.sink = s
	e.mu.Unlock()
}

func passGuards(gs []*guard, c *evalCtx) bool {
	for _, g := range gs {
		if !g.pass(c) {
			return false
		}
	}
	return true
}
