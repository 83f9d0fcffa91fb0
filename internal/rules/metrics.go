package rules

import "github.com/prometheus/client_golang/prometheus"

type engineMetrics struct {
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
	m := &engineMetrics{
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_successful",
			Help: "1 if the last rule reload succeeded, 0 if it failed and the previous rules are still in use.",
		}),
		reloadOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful rule reload.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rules_reloads_total",
			Help: "Rule reload attempts by result.",
		}, []string{"result"}),
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
