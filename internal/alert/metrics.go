package alert

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	sent, failed, dropped *prometheus.CounterVec
	queueLen              *prometheus.GaugeVec
	active                prometheus.Gauge
	activeDropped         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_sent_total",
			Help: "Alerts delivered successfully, per notifier.",
		}, []string{"notifier"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_failed_total",
			Help: "Alerts in delivery attempts that failed (they are retried), per notifier.",
		}, []string{"notifier"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_dropped_total",
			Help: "Alerts dropped without delivery: queue full or rejected by the receiver, per notifier.",
		}, []string{"notifier"}),
		queueLen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_notification_queue_length",
			Help: "Alerts waiting for delivery, per notifier.",
		}, []string{"notifier"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerts_active",
			Help: "Firing alerts tracked by the dispatcher for re-sending.",
		}),
		activeDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alerts_dropped_total",
			Help: "New firing alerts not tracked because the active-alert limit was reached.",
		}),
	}
	if reg != nil {
		m.sent = register(reg, m.sent)
		m.failed = register(reg, m.failed)
		m.dropped = register(reg, m.dropped)
		m.queueLen = register(reg, m.queueLen)
		m.active = register(reg, m.active)
		m.activeDropped = register(reg, m.activeDropped)
	}
	return m
}

// register registers c, or returns the collector already registered under
// the same name, so that two dispatchers on one registry (say, in a test or
// while components are being wired) share the per-notifier series instead of
// panicking.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a different metric under one of our names: a programming error
	}
	return c
}
