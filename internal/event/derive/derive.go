// Package derive is where low-level events become higher-level ones.
//
// A deriver consumes event kinds from the bus (exec and exit, or later the
// read/write records of a connection stream) and publishes kinds of its
// own (process_lifetime, or later http_request, sql_query, ...), which are
// registered in the schema like any probe's kinds: rules, traces, JSON and
// docs see no difference. Protocol parsers are derivers, not new ring
// readers: one probe reads the kernel, any number of derivers interpret.
//
// Each deriver runs in its own goroutine behind a bounded bus queue (a
// full queue drops events, counted by the bus as
// vigil_event_queue_dropped_total{subscriber="derive/<name>"}). It runs
// only while someone consumes one of its kinds (it follows the bus's
// subscribers, no polling), so an idle agent does not make probes build
// the events it would consume. State it must give up (a
// full table) is counted in vigil_derive_state_dropped_total.
package derive

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// Deriver holds the state of one deriver while it runs.
type Deriver interface {
	// Consume handles one input event; derived events go to Env.Emit.
	Consume(ev event.Event)
}

// Ticker is implemented by derivers with timeouts (a request that never
// got its response); Tick is called about once a second.
type Ticker interface {
	Tick(now time.Time)
}

// Env is what a running deriver is given.
type Env struct {
	// Emit publishes a derived event: its kind must be one of Spec.Produces.
	Emit func(event.Event)
	// Drop counts state the deriver gave up, by a short fixed reason.
	Drop func(reason string)
}

// Spec describes a deriver to the registry.
type Spec struct {
	Name     string // lower-case, used in metric labels
	Help     string
	Consumes []event.Kind
	// Produces are the kinds it emits, registered with schema.Register
	// (their From should list Consumes).
	Produces []*schema.Kind
	// Queue bounds the input queue (events); 0 means DefaultQueue.
	Queue int
	// New returns a fresh deriver; state starts empty each time it is
	// (re)started.
	New func(env Env) Deriver
}

// DefaultQueue is the input queue size of a deriver that sets none.
const DefaultQueue = 4096

var (
	mu    sync.Mutex
	specs []Spec
)

// Register adds a deriver; a duplicate name or a produced kind that is not
// registered in the schema is a programming error and panics.
func Register(s Spec) {
	if err := s.validate(); err != nil {
		panic(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range specs {
		if o.Name == s.Name {
			panic(fmt.Sprintf("deriver %q registered twice", s.Name))
		}
	}
	specs = append(specs, s)
}

func (s Spec) validate() error {
	if s.Name == "" || s.New == nil || len(s.Consumes) == 0 || len(s.Produces) == 0 {
		return fmt.Errorf("deriver %q: name, consumed kinds, produced kinds and New are required", s.Name)
	}
	for _, k := range s.Produces {
		if reg, ok := schema.Lookup(k.Name); !ok || reg != k {
			return fmt.Errorf("deriver %q: produced kind %q is not registered in the schema", s.Name, k.Name)
		}
		if slices.Contains(s.Consumes, k.Name) {
			return fmt.Errorf("deriver %q: consumes its own kind %q", s.Name, k.Name)
		}
	}
	return nil
}

// All returns the registered derivers, sorted by name.
func All() []Spec {
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(specs)
	slices.SortFunc(out, func(a, b Spec) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Runner runs every registered deriver against one bus.
type Runner struct {
	bus   *event.Bus
	log   *slog.Logger
	specs []Spec

	consumed *prometheus.CounterVec
	produced *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	running  *prometheus.GaugeVec
}

// NewRunner prepares the registered derivers for bus, plus extra ones that
// belong to this agent (configured from its file, with metrics of their
// own); an invalid extra spec or a duplicate name panics, as Register does.
func NewRunner(bus *event.Bus, log *slog.Logger, extra ...Spec) *Runner {
	specs := All()
	for _, s := range extra {
		if err := s.validate(); err != nil {
			panic(err)
		}
		if slices.ContainsFunc(specs, func(o Spec) bool { return o.Name == s.Name }) {
			panic(fmt.Sprintf("deriver %q registered twice", s.Name))
		}
		specs = append(specs, s)
	}
	return newRunner(bus, log, specs)
}

func newRunner(bus *event.Bus, log *slog.Logger, specs []Spec) *Runner {
	return &Runner{
		bus: bus, log: log, specs: specs,
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_derive_events_consumed_total",
			Help: "Events a deriver consumed.",
		}, []string{"deriver"}),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_derive_events_produced_total",
			Help: "Events a deriver produced, by kind.",
		}, []string{"deriver", "kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_derive_state_dropped_total",
			Help: "State a deriver gave up (a full table), by reason.",
		}, []string{"deriver", "reason"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_derive_running",
			Help: "1 while a deriver runs (someone consumes its kinds), else 0.",
		}, []string{"deriver"}),
	}
}

// Collectors returns the derivers' self-metrics.
func (r *Runner) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.consumed, r.produced, r.dropped, r.running}
}

// Run runs every deriver until ctx is done.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range r.specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx, s)
		}()
	}
	wg.Wait()
}

// run subscribes s's inputs while one of its outputs is wanted.
func (r *Runner) run(ctx context.Context, s Spec) {
	consumed := r.consumed.WithLabelValues(s.Name)
	running := r.running.WithLabelValues(s.Name)
	running.Set(0)
	produced := map[event.Kind]prometheus.Counter{}
	for _, k := range s.Produces {
		produced[k.Name] = r.produced.WithLabelValues(s.Name, string(k.Name))
	}
	env := Env{
		Emit: func(ev event.Event) {
			c, ok := produced[ev.EventKind()]
			if !ok {
				r.log.Error("deriver emitted a kind it does not declare; dropped", "deriver", s.Name, "kind", ev.EventKind())
				return
			}
			c.Inc()
			r.bus.Publish(ev)
		},
		Drop: func(reason string) { r.dropped.WithLabelValues(s.Name, reason).Inc() },
	}
	queue := s.Queue
	if queue <= 0 {
		queue = DefaultQueue
	}
	var sub *event.Subscription
	var d Deriver
	var in <-chan event.Event
	stop := func() {
		if sub != nil {
			r.bus.Unsubscribe(sub)
			sub, d, in = nil, nil, nil
			running.Set(0)
		}
	}
	defer stop()
	check := func() {
		wanted := false
		for _, k := range s.Produces {
			if r.bus.Wants(k.Name) {
				wanted = true
				break
			}
		}
		switch {
		case wanted && sub == nil:
			d = s.New(env)
			sub = r.bus.Subscribe("derive/"+s.Name, queue, s.Consumes...)
			in = sub.C()
			running.Set(1)
		case !wanted && sub != nil:
			stop()
		}
	}
	var tick <-chan time.Time
	changed := r.bus.Changed() // before check: a change after it closes this
	check()
	for {
		if _, ok := d.(Ticker); ok && tick == nil {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			tick = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = r.bus.Changed()
			check()
		case now := <-tick:
			if tk, ok := d.(Ticker); ok {
				tk.Tick(now)
			}
		case ev, ok := <-in:
			if !ok {
				sub, d, in = nil, nil, nil
				running.Set(0)
				continue
			}
			consumed.Inc()
			d.Consume(ev)
		}
	}
}
