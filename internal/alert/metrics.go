package alert

import "github.com/prometheus/client_golang/prometheus"

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
		reg.MustRegister(m.sent, m.failed, m.dropped, m.queueLen, m.active, m.activeDropped)
	}
	return m
}
