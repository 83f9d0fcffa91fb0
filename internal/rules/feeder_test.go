package rules

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// TestFeederScrapeShape feeds every metric type and checks the stored
// series look like a Prometheus scrape, and that a vanished series gets a
// staleness marker.
func TestFeederScrapeShape(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_events_total", Help: "h"}, []string{"kind"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_queue", Help: "h"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_latency_seconds", Help: "h", Buckets: []float64{0.5, 1}})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "t_size_bytes", Help: "h", Objectives: map[float64]float64{0.5: 0.05}})
	u := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "t_untyped", Help: "h"}, func() float64 { return 7 })
	reg.MustRegister(c, g, h, s, u)
	c.WithLabelValues("a").Add(3)
	c.WithLabelValues("gone").Inc()
	g.Set(2.5)
	h.Observe(0.7)
	h.Observe(3)
	s.Observe(10)

	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := newFeeder(reg, db, newEngineMetrics())
	t1 := time.Now().Truncate(time.Second)
	if err := f.feed(context.Background(), t1); err != nil {
		t.Fatal(err)
	}
	c.DeleteLabelValues("gone")
	t2 := t1.Add(15 * time.Second)
	if err := f.feed(context.Background(), t2); err != nil {
		t.Fatal(err)
	}

	want := map[string][]float64{ // series → values at t1, t2
		`{__name__="t_events_total", kind="a"}`:            {3, 3},
		`{__name__="t_events_total", kind="gone"}`:         {1, math.NaN()}, // stale at t2
		`{__name__="t_queue"}`:                             {2.5, 2.5},
		`{__name__="t_latency_seconds_bucket", le="0.5"}`:  {0, 0},
		`{__name__="t_latency_seconds_bucket", le="1.0"}`:  {1, 1},
		`{__name__="t_latency_seconds_bucket", le="+Inf"}`: {2, 2},
		`{__name__="t_latency_seconds_sum"}`:               {3.7, 3.7},
		`{__name__="t_latency_seconds_count"}`:             {2, 2},
		`{__name__="t_size_bytes", quantile="0.5"}`:        {10, 10},
		`{__name__="t_size_bytes_sum"}`:                    {10, 10},
		`{__name__="t_size_bytes_count"}`:                  {1, 1},
		`{__name__="t_untyped"}`:                           {7, 7},
	}
	q, err := db.Querier(t1.UnixMilli(), t2.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "t_.*"))
	got := map[string][]float64{}
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			got[ss.At().Labels().String()] = append(got[ss.At().Labels().String()], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		g := got[k]
		if len(g) != 2 {
			t.Errorf("%s: values %v, want %v", k, g, w)
			continue
		}
		if math.IsNaN(w[1]) {
			if g[0] != w[0] || !value.IsStaleNaN(g[1]) {
				t.Errorf("%s: %v, want %v then a staleness marker", k, g, w[0])
			}
			continue
		}
		if math.Abs(g[0]-w[0]) > 1e-9 || math.Abs(g[1]-w[1]) > 1e-9 {
			t.Errorf("%s: values %v, want %v", k, g, w)
		}
	}
}
