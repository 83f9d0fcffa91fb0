package eventrules

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/rulewatch"
)

type engineMetrics struct {
	events      *prometheus.CounterVec
	matches     *prometheus.CounterVec
	excepted    *prometheus.CounterVec
	suppressed  *prometheus.CounterVec
	alerts      *prometheus.CounterVec
	errors      *prometheus.CounterVec
	evictions   *prometheus.CounterVec
	reload      *rulewatch.Metrics
	reloads     *prometheus.CounterVec
	reloadOK    prometheus.Gauge
	reloadTime  prometheus.Gauge
	loaded      *prometheus.GaugeVec
	reorderOver prometheus.Counter
	late        prometheus.Counter
	dedupEvict  prometheus.Counter
	states      prometheus.GaugeFunc
	dedupLen    prometheus.GaugeFunc
}

// ruleCounters are one rule's counters, resolved once per load.
type ruleCounters struct {
	matches, excepted, suppressed, alerts, errors prometheus.Counter
}

func newMetrics(e *Engine) *engineMetrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &engineMetrics{
		events:     cv("vigil_event_rules_events_total", "Events the event-rule engine evaluated, by kind.", "kind"),
		matches:    cv("vigil_event_rule_matches_total", "Events (or completed sequences) matching a rule's condition, before exceptions and dedup.", "rule"),
		excepted:   cv("vigil_event_rule_exceptions_total", "Matches dropped by one of the rule's exceptions.", "rule"),
		suppressed: cv("vigil_event_rule_suppressed_total", "Matches folded into an already-sent alert of the same rule and group within the suppression window (reported as suppressed_repeats).", "rule"),
		alerts:     cv("vigil_event_rule_alerts_total", "Alert notices handed to delivery (new alerts and repeat-count updates).", "rule"),
		errors:     cv("vigil_event_rule_errors_total", "Condition evaluations that failed at run time (treated as no match).", "rule"),
		evictions:  cv("vigil_sequence_state_evictions_total", "Sequence states removed before completing, by reason: capacity (per-rule or total bound), window (expired), exit (process ended), until (cancelled), reload.", "rule", "reason"),
		loaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_event_rules_loaded",
			Help: "Event rules in force, by type (rule, sequence)."}, []string{"type"}),
		reorderOver: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_event_rules_reorder_overflow_total",
			Help: "Events released from the reorder buffer early because it was full."}),
		late: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_event_rules_late_events_total",
			Help: "Events for sequences that arrived after newer events had been processed (later than the reorder window)."}),
		dedupEvict: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_event_rules_dedup_evictions_total",
			Help: "Dedup entries removed early because the dedup table was full (their repeat counts are sent first)."}),
	}
	// Reload metrics are one family shared with the metric-rule engine.
	m.reload = rulewatch.NewMetrics(rulewatch.EngineEvent)
	m.reloads, m.reloadOK, m.reloadTime = m.reload.Reloads, m.reload.OK, m.reload.OKTime
	m.states = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_sequence_states",
		Help: "Partially matched sequences held in memory (all sequence rules)."}, func() float64 { return float64(e.seqTotal.Load()) })
	m.dedupLen = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_event_rules_dedup_entries",
		Help: "Rule and group keys currently inside their suppression window."}, func() float64 { return float64(e.dedupLen.Load()) })
	return m
}

func (m *engineMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.events, m.matches, m.excepted, m.suppressed, m.alerts, m.errors, m.evictions,
		m.reloads, m.reloadOK, m.reloadTime, m.loaded, m.reorderOver, m.late, m.dedupEvict, m.states, m.dedupLen}
}

func (m *engineMetrics) forRule(name string) *ruleCounters {
	return &ruleCounters{
		matches:    m.matches.WithLabelValues(name),
		excepted:   m.excepted.WithLabelValues(name),
		suppressed: m.suppressed.WithLabelValues(name),
		alerts:     m.alerts.WithLabelValues(name),
		errors:     m.errors.WithLabelValues(name),
	}
}
