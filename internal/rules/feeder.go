package rules

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// feeder copies the agent's own metrics into the local TSDB, the way a
// Prometheus scrape would: counters, gauges and untyped as is, classic
// histograms as _bucket{le}/_sum/_count, summaries as {quantile}/_sum/_count.
// Series that vanish between two gathers get a staleness marker so that
// queries stop seeing them at once instead of after the lookback delta.
type feeder struct {
	g   prometheus.Gatherer
	app storage.Appendable
	m   *engineMetrics

	// last maps each series appended in the previous round to its labels and
	// storage reference. Only the feeder goroutine touches it.
	last map[uint64]seriesRef
	sb   labels.ScratchBuilder
}

type seriesRef struct {
	lset labels.Labels
	ref  storage.SeriesRef
}

func newFeeder(g prometheus.Gatherer, app storage.Appendable, m *engineMetrics) *feeder {
	return &feeder{g: g, app: app, m: m, last: map[uint64]seriesRef{}, sb: labels.NewScratchBuilder(8)}
}

// run feeds every interval until ctx ends. (Engine.Run then marks all
// series stale, so a restarted agent does not see them as live during the
// lookback window.)
func (f *feeder) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f.feed(ctx, now)
		}
	}
}

// feed gathers once and appends all samples with timestamp now (or the
// metric's own timestamp when it has one).
func (f *feeder) feed(ctx context.Context, now time.Time) error {
	start := time.Now()
	mfs, gerr := f.g.Gather()
	// Gather returns what it could together with an error; use it.
	if gerr != nil {
		f.m.feedErrors.Inc()
	}
	ts := now.UnixMilli()
	app := f.app.Appender(ctx)
	seen := make(map[uint64]seriesRef, len(f.last))
	var n, bad int
	add := func(lset labels.Labels, t int64, v float64) {
		h := lset.Hash()
		prev, ok := f.last[h]
		ref := prev.ref
		if !ok {
			ref = 0
		}
		ref, err := app.Append(ref, lset, t, v)
		if err != nil {
			// Duplicate or out-of-order samples (e.g. a metric with a fixed
			// explicit timestamp) are expected and skipped.
			bad++
			if !ok {
				return
			}
			ref = prev.ref
		}
		seen[h] = seriesRef{lset: lset, ref: ref}
		n++
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			t := ts
			if m.TimestampMs != nil {
				t = m.GetTimestampMs()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(f.lset(name, m, "", ""), t, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(f.lset(name, m, "", ""), t, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(f.lset(name, m, "", ""), t, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(f.lset(name, m, "quantile", formatFloat(q.GetQuantile())), t, q.GetValue())
				}
				add(f.lset(name+"_sum", m, "", ""), t, s.GetSampleSum())
				add(f.lset(name+"_count", m, "", ""), t, float64(s.GetSampleCount()))
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						inf = true
					}
					add(f.lset(name+"_bucket", m, "le", formatFloat(b.GetUpperBound())), t, float64(b.GetCumulativeCount()))
				}
				// The +Inf bucket is implicit in client_golang's
				// protobuf; the text format always has it.
				if !inf {
					add(f.lset(name+"_bucket", m, "le", "+Inf"), t, float64(h.GetSampleCount()))
				}
				add(f.lset(name+"_sum", m, "", ""), t, h.GetSampleSum())
				add(f.lset(name+"_count", m, "", ""), t, float64(h.GetSampleCount()))
			}
		}
	}
	stale := math.Float64frombits(value.StaleNaN)
	for h, s := range f.last {
		if _, ok := seen[h]; !ok {
			app.Append(s.ref, s.lset, ts, stale) //nolint:errcheck // best effort, like Prometheus
		}
	}
	if err := app.Commit(); err != nil {
		f.m.feedErrors.Inc()
		return err
	}
	f.last = seen
	f.m.feedSamples.Add(float64(n))
	f.m.feedSkipped.Add(float64(bad))
	f.m.feedDuration.Set(time.Since(start).Seconds())
	return gerr
}

// markAllStale appends a staleness marker for every live series; used on
// shutdown.
func (f *feeder) markAllStale(ctx context.Context, now time.Time) error {
	app := f.app.Appender(ctx)
	stale := math.Float64frombits(value.StaleNaN)
	var errs []error
	for _, s := range f.last {
		if _, err := app.Append(s.ref, s.lset, now.UnixMilli(), stale); err != nil {
			errs = append(errs, err)
		}
	}
	f.last = map[uint64]seriesRef{}
	return errors.Join(append(errs, app.Commit())...)
}

func (f *feeder) lset(name string, m *dto.Metric, extraName, extraValue string) labels.Labels {
	f.sb.Reset()
	f.sb.Add(labels.MetricName, name)
	for _, lp := range m.GetLabel() {
		f.sb.Add(lp.GetName(), lp.GetValue())
	}
	if extraName != "" {
		f.sb.Add(extraName, extraValue)
	}
	f.sb.Sort()
	return f.sb.Labels()
}

// formatFloat renders le/quantile values the way Prometheus 3 normalises
// them (OpenMetrics canonical: "1.0", "0.25", "+Inf").
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
