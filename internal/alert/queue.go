package alert

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// queue holds undelivered alerts for one notifier. It is keyed by
// fingerprint: a newer state of an alert replaces the queued one in place, so
// while a receiver is down the queue holds at most one entry per alert and
// the receiver gets the latest state when it comes back.
type queue struct {
	mu    sync.Mutex
	order []Fingerprint
	items map[Fingerprint]Alert
	cap   int
	gen   uint64 // bumped on every change; lets the dispatcher skip unchanged saves
	wake  chan struct{}
}

func newQueue(capacity int) *queue {
	return &queue{items: map[Fingerprint]Alert{}, cap: capacity, wake: make(chan struct{}, 1)}
}

// push adds or replaces a; it returns how many old entries were dropped to
// make room.
func (q *queue) push(a Alert) (dropped int) {
	q.mu.Lock()
	fp := a.Fingerprint()
	if _, ok := q.items[fp]; !ok {
		for len(q.order) >= q.cap {
			delete(q.items, q.order[0])
			q.order = q.order[1:]
			dropped++
		}
		q.order = append(q.order, fp)
	}
	q.items[fp] = a
	q.gen++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped
}

// pop removes and returns up to n alerts from the front.
func (q *queue) pop(n int) []Alert {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.order))
	out := make([]Alert, 0, n)
	for _, fp := range q.order[:n] {
		out = append(out, q.items[fp])
		delete(q.items, fp)
	}
	q.order = q.order[n:]
	if n > 0 {
		q.gen++
	}
	return out
}

// requeue puts a failed batch back at the front, unless a newer state of the
// same alert was queued meanwhile (the newer one wins). Entries beyond the
// capacity are dropped from the back of the batch.
func (q *queue) requeue(batch []Alert) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	front := make([]Fingerprint, 0, len(batch))
	for _, a := range batch {
		fp := a.Fingerprint()
		if _, newer := q.items[fp]; newer {
			continue
		}
		if len(q.order)+len(front) >= q.cap {
			dropped++
			continue
		}
		q.items[fp] = a
		front = append(front, fp)
	}
	q.order = append(front, q.order...)
	q.gen++
	return dropped
}

func (q *queue) snapshot() (items []Alert, gen uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, fp := range q.order {
		items = append(items, q.items[fp])
	}
	return items, q.gen
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// PermanentError marks a delivery failure that retrying cannot fix (for
// example HTTP 400: the receiver rejected the payload). The batch is dropped
// instead of retried.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// worker delivers one notifier's queue.
type worker struct {
	n          Notifier
	q          *queue
	m          *metrics
	log        *slog.Logger
	maxBatch   int
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
}

func (w *worker) run(ctx context.Context) {
	name := w.n.Name()
	backoff := w.minBackoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.q.wake:
		}
		for {
			batch := w.q.pop(w.maxBatch)
			if len(batch) == 0 {
				break
			}
			w.m.queueLen.WithLabelValues(name).Set(float64(w.q.len()))
			sctx, cancel := context.WithTimeout(ctx, w.timeout)
			err := w.n.Notify(sctx, batch)
			cancel()
			if err == nil {
				w.m.sent.WithLabelValues(name).Add(float64(len(batch)))
				backoff = w.minBackoff
				continue
			}
			w.m.failed.WithLabelValues(name).Add(float64(len(batch)))
			var perm *PermanentError
			if errors.As(err, &perm) {
				w.log.Error("notifier rejected alerts, dropping them", "notifier", name, "alerts", len(batch), "err", err)
				w.m.dropped.WithLabelValues(name).Add(float64(len(batch)))
				continue
			}
			if d := w.q.requeue(batch); d > 0 {
				w.m.dropped.WithLabelValues(name).Add(float64(d))
			}
			w.m.queueLen.WithLabelValues(name).Set(float64(w.q.len()))
			w.log.Warn("alert delivery failed, will retry", "notifier", name, "alerts", len(batch), "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, w.maxBackoff)
		}
	}
}
