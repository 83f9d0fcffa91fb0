// Package metrics holds vigil's shared metric helpers: label cardinality
// caps and the self-metrics that make the agent's own cost visible.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Other is the label value that stands for every value past a cap.
const Other = "other"

// Folded counts label values replaced by "other", by metric and label.
var Folded = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "vigil_metric_label_values_folded_total",
	Help: "Observations whose label value was folded into \"other\" because the label reached its cardinality cap.",
}, []string{"metric", "label"})

// LabelCap admits the first limit distinct values of a label and folds the
// rest into "other". First come keeps series stable: a value never moves
// between its own series and "other".
type LabelCap struct {
	mu     sync.RWMutex
	limit  int
	seen   map[string]struct{}
	folded prometheus.Counter
}

// NewLabelCap caps label of metric at limit distinct values.
func NewLabelCap(metric, label string, limit int) *LabelCap {
	if limit < 1 {
		limit = 1
	}
	return &LabelCap{limit: limit, seen: make(map[string]struct{}, limit), folded: Folded.WithLabelValues(metric, label)}
}

// Value returns v if it is admitted, otherwise "other".
func (c *LabelCap) Value(v string) string {
	c.mu.RLock()
	_, ok := c.seen[v]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) < c.limit {
		c.seen[v] = struct{}{}
		return v
	}
	c.folded.Inc()
	return Other
}
