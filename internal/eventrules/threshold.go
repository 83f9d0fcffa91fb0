package eventrules

import (
	"container/list"
	"time"
)

// burstRuntime counts matches of a threshold rule per key. Each key keeps
// the times of its last count matches (a ring), so the window slides. Keys
// share the sequence-state bounds and metrics.
type burstRuntime struct {
	r     *Rule
	keys  map[string]*burstKey
	order *list.List // least recently matched first
}

type burstKey struct {
	key   string
	times []time.Time // ring of the last len(times) match times
	n     int         // matches recorded (may exceed len(times))
	elem  *list.Element
}

func newBurstRuntime(r *Rule) *burstRuntime {
	return &burstRuntime{r: r, keys: map[string]*burstKey{}, order: list.New()}
}

// countThreshold records a match of r and reports whether it completes a
// burst: count matches of one key within the window. The key's count then
// starts over.
func (e *Engine) countThreshold(r *Rule, c *evalCtx) bool {
	br := e.bursts[r.Name]
	th := r.threshold
	key, ok := e.key(th.by, c, r.Name)
	if !ok || br == nil {
		return false
	}
	t := c.h.Time
	if t.IsZero() {
		t = e.now()
	}
	e.expireBursts(br, t)
	k := br.keys[key]
	if k == nil {
		opts := e.rs.Opts
		if len(br.keys) >= opts.MaxKeysPerRule || e.seqTotal.Load() >= int64(opts.MaxKeysTotal) {
			if f := br.order.Front(); f != nil {
				e.removeBurst(br, f.Value.(*burstKey), "capacity")
			}
		}
		k = &burstKey{key: key, times: make([]time.Time, th.count)}
		k.elem = br.order.PushBack(k)
		br.keys[key] = k
		e.seqTotal.Add(1)
	} else {
		br.order.MoveToBack(k.elem)
	}
	k.times[k.n%th.count] = t
	k.n++
	if k.n < th.count {
		return false
	}
	oldest := k.times[k.n%th.count] // the count-th newest
	if t.Sub(oldest) > th.window {
		return false
	}
	e.removeBurst(br, k, "")
	return true
}

func (e *Engine) removeBurst(br *burstRuntime, k *burstKey, reason string) {
	br.order.Remove(k.elem)
	delete(br.keys, k.key)
	e.seqTotal.Add(-1)
	if reason != "" {
		e.m.evictions.WithLabelValues(br.r.Name, reason).Inc()
	}
}

// expireBursts drops keys whose newest match is older than the window.
func (e *Engine) expireBursts(br *burstRuntime, t time.Time) {
	th := br.r.threshold
	for f := br.order.Front(); f != nil; f = br.order.Front() {
		k := f.Value.(*burstKey)
		last := k.times[(k.n-1)%th.count]
		if t.Sub(last) <= th.window {
			return
		}
		e.removeBurst(br, k, "window")
	}
}
