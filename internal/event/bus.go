package event

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Bus fans events out to subscribers. Publishing never blocks: a subscriber
// whose queue is full loses the event, and the loss is counted.
type Bus struct {
	mu   sync.RWMutex
	subs []*Subscription
	// changed is closed (and replaced) when the set of subscribers changes.
	changed chan struct{}

	published *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	// perKind caches published's children: Publish is on the per-event path.
	perKind sync.Map // Kind -> prometheus.Counter
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_events_published_total",
			Help: "Events published to the internal event bus, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_event_queue_dropped_total",
			Help: "Events a subscriber lost because its queue was full.",
		}, []string{"subscriber"}),
	}
}

// Collectors returns the bus's self-metrics.
func (b *Bus) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.published, b.dropped, queueCollector{b}}
}

// Subscription is a consumer's bounded queue.
type Subscription struct {
	bus     *Bus
	name    string
	kinds   map[Kind]bool
	ch      chan Event
	dropped prometheus.Counter
	Lost    atomic.Uint64
}

// C delivers the subscribed events.
func (s *Subscription) C() <-chan Event { return s.ch }

// Name is the subscriber's name, as used in metrics.
func (s *Subscription) Name() string { return s.name }

// Takes reports whether the subscription receives events of kind k.
func (s *Subscription) Takes(k Kind) bool { return s.kinds == nil || s.kinds[k] }

// Subscribe registers a consumer of the given kinds (all kinds when none)
// with a queue of size events.
func (b *Bus) Subscribe(name string, size int, kinds ...Kind) *Subscription {
	s := &Subscription{bus: b, name: name, ch: make(chan Event, size), dropped: b.dropped.WithLabelValues(name)}
	if len(kinds) > 0 {
		s.kinds = map[Kind]bool{}
		for _, k := range kinds {
			s.kinds[k] = true
		}
	}
	b.mu.Lock()
	b.subs = append(b.subs, s)
	b.notifyLocked()
	b.mu.Unlock()
	return s
}

// Changed returns a channel that is closed the next time a subscriber comes
// or goes, so a consumer that depends on demand (Wants) can follow it
// without polling.
func (b *Bus) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

func (b *Bus) notifyLocked() {
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// Unsubscribe removes s; its channel is closed.
func (b *Bus) Unsubscribe(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.subs {
		if x == s {
			b.subs = append(b.subs[:i], b.subs[i+1:]...)
			close(s.ch)
			b.notifyLocked()
			return
		}
	}
}

// Wants reports whether any subscriber takes events of kind k, so producers
// can skip building events nobody reads.
func (b *Bus) Wants(k Kind) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs {
		if s.kinds == nil || s.kinds[k] {
			return true
		}
	}
	return false
}

// Publish hands e to every interested subscriber without blocking.
func (b *Bus) Publish(e Event) {
	k := e.EventKind()
	c, ok := b.perKind.Load(k)
	if !ok {
		c, _ = b.perKind.LoadOrStore(k, b.published.WithLabelValues(string(k)))
	}
	c.(prometheus.Counter).Inc()
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs {
		if s.kinds != nil && !s.kinds[k] {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.Lost.Add(1)
			s.dropped.Inc()
		}
	}
}

// queueCollector reports each subscriber's queue length and capacity.
type queueCollector struct{ b *Bus }

var (
	queueLenDesc = prometheus.NewDesc("vigil_event_queue_length", "Events waiting in a subscriber's queue.", []string{"subscriber"}, nil)
	queueCapDesc = prometheus.NewDesc("vigil_event_queue_capacity", "Capacity of a subscriber's queue.", []string{"subscriber"}, nil)
)

func (q queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueLenDesc; ch <- queueCapDesc }

func (q queueCollector) Collect(ch chan<- prometheus.Metric) {
	q.b.mu.RLock()
	defer q.b.mu.RUnlock()
	for _, s := range q.b.subs {
		ch <- prometheus.MustNewConstMetric(queueLenDesc, prometheus.GaugeValue, float64(len(s.ch)), s.name)
		ch <- prometheus.MustNewConstMetric(queueCapDesc, prometheus.GaugeValue, float64(cap(s.ch)), s.name)
	}
}
