package rules

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/rulewatch"
)

type engineMetrics struct {
	reload       *rulewatch.Metrics
	reloadOK     prometheus.Gauge
	reloadOKTime prometheus.Gauge
	reloads      *prometheus.CounterVec
	rulesLoaded  prometheus.Gauge
	evalDuration *prometheus.HistogramVec
	evalFailures *prometheus.CounterVec
	feedSamples  prometheus.Counter
	feedSkipped  prometheus.Counter
	feedErrors   prometheus.Counter
	feedDuration prometheus.Gauge
	extra        []prometheus.Collector // TSDB gauges, set by New
}

func newEngineMetrics() *engineMetrics {
	// Reload metrics are one family shared with the event-rule engine.
	rw := rulewatch.NewMetrics(rulewatch.EngineMetric)
	m := &engineMetrics{
		reload:       rw,
		reloadOK:     rw.OK,
		reloadOKTime: rw.OKTime,
		reloads:      rw.Reloads,
		rulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_loaded",
			Help: "Alerting and recording rules currently loaded.",
		}),
		evalDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_rule_group_evaluation_duration_seconds",
			Help:    "Time to evaluate all rules of a group once.",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"rule_group"}),
		evalFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rule_evaluation_failures_total",
			Help: "Rule evaluations that failed (bad query at run time, timeout, sample limit).",
		}, []string{"rule_group"}),
		feedSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_tsdb_appended_samples_total",
			Help: "Samples copied from the agent's registry into the local TSDB.",
		}),
		feedSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_tsdb_rejected_samples_total",
			Help: "Samples the local TSDB rejected (duplicate or out-of-order timestamps).",
		}),
		feedErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_tsdb_feed_errors_total",
			Help: "Failed gathers or commits while feeding the local TSDB.",
		}),
		feedDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_tsdb_feed_duration_seconds",
			Help: "Duration of the last gather-and-append into the local TSDB.",
		}),
	}
	return m
}

func (m *engineMetrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.reloadOK, m.reloadOKTime, m.reloads, m.rulesLoaded,
		m.evalDuration, m.evalFailures, m.feedSamples, m.feedSkipped, m.feedErrors, m.feedDuration},
		m.extra...)
}
