package alert

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Notifier delivers a batch of alerts to one receiver. Implementations must
// be safe for use by one goroutine at a time (the dispatcher never calls a
// notifier concurrently) and should honour ctx for cancellation.
type Notifier interface {
	// Name is the value of the "notifier" label on the delivery metrics,
	// e.g. "alertmanager:127.0.0.1:9093". It must be unique and stable.
	Name() string
	Notify(ctx context.Context, alerts []Alert) error
}

// Options configure a Dispatcher. Zero values select the defaults noted.
type Options struct {
	Notifiers []Notifier
	// StateFile keeps active alerts and undelivered notices across restarts.
	// Empty disables persistence.
	StateFile string
	// ExternalLabels are added to every alert that lacks them (e.g. host).
	ExternalLabels map[string]string
	ResendInterval time.Duration // default 1m
	QueueCapacity  int           // per notifier, default 10000
	MaxActive      int           // tracked firing alerts, default 10000
	MaxBatch       int           // alerts per delivery request, default 64
	Timeout        time.Duration // per delivery attempt, default 10s
	MinBackoff     time.Duration // default 500ms
	MaxBackoff     time.Duration // default 1m
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ResendInterval, time.Minute)
	def(&o.Timeout, 10*time.Second)
	def(&o.MinBackoff, 500*time.Millisecond)
	def(&o.MaxBackoff, time.Minute)
	if o.QueueCapacity <= 0 {
		o.QueueCapacity = 10000
	}
	if o.MaxActive <= 0 {
		o.MaxActive = 10000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// tracked is a firing alert the dispatcher keeps re-sending.
type tracked struct {
	alert      Alert
	source     string
	lastQueued time.Time
}

// Dispatcher fans alerts out to all notifiers. See the package documentation.
type Dispatcher struct {
	opts    Options
	m       *metrics
	workers []*worker
	now     func() time.Time

	mu     sync.Mutex
	active map[Fingerprint]*tracked
	dirty  bool
	saved  []uint64 // queue generations at the last save
}

// NewDispatcher builds a dispatcher and restores its state file if present.
// A corrupt state file is reported and ignored, so a bad file never stops the
// agent.
func NewDispatcher(opts Options) (*Dispatcher, error) {
	opts.defaults()
	seen := map[string]bool{}
	for _, n := range opts.Notifiers {
		if seen[n.Name()] {
			return nil, fmt.Errorf("alert: two notifiers named %q", n.Name())
		}
		seen[n.Name()] = true
	}
	d := &Dispatcher{
		opts:   opts,
		m:      newMetrics(opts.Registerer),
		now:    time.Now,
		active: map[Fingerprint]*tracked{},
	}
	for _, n := range opts.Notifiers {
		d.workers = append(d.workers, &worker{
			n: n, q: newQueue(opts.QueueCapacity), m: d.m, log: opts.Logger,
			maxBatch: opts.MaxBatch, timeout: opts.Timeout,
			minBackoff: opts.MinBackoff, maxBackoff: opts.MaxBackoff,
		})
		d.m.queueLen.WithLabelValues(n.Name()).Set(0)
		d.m.sent.WithLabelValues(n.Name())
		d.m.failed.WithLabelValues(n.Name())
		d.m.dropped.WithLabelValues(n.Name())
	}
	d.saved = make([]uint64, len(d.workers))
	if err := d.load(); err != nil {
		opts.Logger.Error("ignoring unreadable alert state file", "file", opts.StateFile, "err", err)
	}
	return d, nil
}

// Send hands alerts to the dispatcher. It never blocks on delivery. source
// names the producer ("metrics", "events") so that Reconcile can resolve
// alerts a producer no longer reports; it is not sent to receivers.
func (d *Dispatcher) Send(source string, alerts []Alert) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range alerts {
		if len(a.Labels) == 0 {
			continue
		}
		a = d.withExternalLabels(a)
		fp := a.Fingerprint()
		cur := d.active[fp]
		if a.Resolved(now) {
			// Deliver even if unknown: it may resolve something sent
			// before a restart without state.
			delete(d.active, fp)
			d.enqueue(a)
			continue
		}
		if cur != nil && cur.alert.sameContent(a, now) && now.Sub(cur.lastQueued) < d.opts.ResendInterval {
			cur.alert = a // keep the newest EndsAt for the next resend
			continue
		}
		if cur == nil {
			if len(d.active) >= d.opts.MaxActive {
				d.m.activeDropped.Inc()
				continue
			}
			cur = &tracked{source: source}
			d.active[fp] = cur
		}
		cur.alert, cur.lastQueued = a, now
		d.enqueue(a)
	}
	d.dirty = true
	d.m.active.Set(float64(len(d.active)))
}

// Reconcile resolves every active alert from source whose fingerprint is not
// among current. The metric-rule engine calls it after its first evaluation
// following a restart: alerts that were firing before the restart and are no
// longer true get a resolved notice instead of silently disappearing.
func (d *Dispatcher) Reconcile(source string, current []Alert) {
	keep := map[Fingerprint]bool{}
	for _, a := range current {
		keep[d.withExternalLabels(a).Fingerprint()] = true
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for fp, t := range d.active {
		if t.source != source || keep[fp] {
			continue
		}
		a := t.alert.clone()
		a.EndsAt = now
		delete(d.active, fp)
		d.enqueue(a)
		d.dirty = true
	}
	d.m.active.Set(float64(len(d.active)))
}

// Active returns the firing alerts the dispatcher is tracking, sorted by
// alertname then fingerprint. With sources given, only alerts from those.
func (d *Dispatcher) Active(sources ...string) []Alert {
	d.mu.Lock()
	out := make([]Alert, 0, len(d.active))
	for _, t := range d.active {
		if len(sources) == 0 || slices.Contains(sources, t.source) {
			out = append(out, t.alert.clone())
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Alert) int {
		if c := cmp.Compare(a.Name(), b.Name()); c != 0 {
			return c
		}
		return cmp.Compare(a.Fingerprint(), b.Fingerprint())
	})
	return out
}

// Run delivers queued alerts, re-sends firing ones and saves state until ctx
// ends; then it writes the state file one last time.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	tick := time.NewTicker(min(max(d.opts.ResendInterval/4, 100*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			d.resend()
			if err := d.saveIfChanged(); err != nil {
				d.opts.Logger.Error("saving alert state", "file", d.opts.StateFile, "err", err)
			}
		}
	}
	wg.Wait()
	return d.saveIfChanged()
}

// resend queues firing alerts whose resend interval has elapsed, and resolves
// those whose EndsAt passed without a refresh from their producer.
func (d *Dispatcher) resend() {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for fp, t := range d.active {
		switch {
		case t.alert.Resolved(now):
			delete(d.active, fp)
			d.enqueue(t.alert)
			d.dirty = true
		case now.Sub(t.lastQueued) >= d.opts.ResendInterval:
			t.lastQueued = now
			d.enqueue(t.alert)
			d.dirty = true
		}
	}
	d.m.active.Set(float64(len(d.active)))
}

// enqueue copies a into every notifier's queue. Caller holds d.mu.
func (d *Dispatcher) enqueue(a Alert) {
	for _, w := range d.workers {
		if n := w.q.push(a.clone()); n > 0 {
			d.m.dropped.WithLabelValues(w.n.Name()).Add(float64(n))
		}
		d.m.queueLen.WithLabelValues(w.n.Name()).Set(float64(w.q.len()))
	}
}

func (d *Dispatcher) withExternalLabels(a Alert) Alert {
	a = a.clone()
	for k, v := range d.opts.ExternalLabels {
		if _, ok := a.Labels[k]; !ok {
			a.Labels[k] = v
		}
	}
	return a
}

// Sources lists the sources of the tracked alerts.
func (d *Dispatcher) Sources() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, t := range d.active {
		if !slices.Contains(out, t.source) {
			out = append(out, t.source)
		}
	}
	slices.Sort(out)
	return out
}
