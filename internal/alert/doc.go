// Package alert delivers alerts from vigil's rule engines to the outside
// world: Alertmanager (API v2), generic webhooks (Alertmanager webhook JSON
// shape) and stdout/log.
//
// Both rule engines use the same path. The metric-rule engine
// (internal/rules) hands over the alerts produced by the embedded Prometheus
// rule manager; the event-rule engine builds Alert values itself:
//
//	// `vigil run` builds one dispatcher from the `alerting:` config section:
//	d, err := alert.NewFromConfig(cfg.Alerting, os.Stdout, registry, logger)
//	// or by hand:
//	am, _ := alert.NewAlertmanager("http://127.0.0.1:9093", nil, nil)
//	d, err := alert.NewDispatcher(alert.Options{
//		Notifiers:      []alert.Notifier{am, alert.NewStdout(os.Stdout)},
//		StateFile:      "/var/lib/vigil/alerts.json",
//		ExternalLabels: map[string]string{"host": hostname},
//		Registerer:     registry,
//	})
//	go d.Run(ctx) // queues, retries, resends; saves state and returns when ctx ends
//
//	// An event rule fires (Send never blocks):
//	d.Send("events", []alert.Alert{{
//		Labels:       map[string]string{"alertname": "ShellInContainer", "severity": "critical", "container": "nginx"},
//		Annotations:  map[string]string{"summary": "bash started in nginx by pid 4242"},
//		StartsAt:     time.Now(),
//		EndsAt:       time.Now().Add(10 * time.Minute), // zero: firing until resolved explicitly
//		GeneratorURL: "http://node:19400/api/v1/events?rule=shell-in-container",
//	}})
//	// ... and resolves:
//	a.EndsAt = time.Now()
//	d.Send("events", []alert.Alert{a})
//
// The first argument of Send names the producer ("metrics" for the metric
// rules, "rules-internal" for the rule engine's own alerts such as
// VigilRuleReloadFailed, "events" for event rules).
// Reconcile(source, current) resolves every tracked alert of that source not
// in current; Active(sources...) lists what is firing (for /api/v1/alerts).
//
// Semantics:
//
//   - Identity: an alert is identified by its label set (Fingerprint). Sending
//     the same labels again updates the alert; it is not a new one. Keep
//     labels low-cardinality (alertname, severity, container, executable);
//     put pids, paths and command lines in annotations.
//   - External labels (host, ...) are added to every alert that lacks them.
//   - Firing vs resolved: an alert whose EndsAt is set and not in the future is
//     resolved. Resolve an alert by sending it again with EndsAt = now.
//     A firing alert whose EndsAt passes without being refreshed is treated as
//     resolved by the dispatcher and a resolved notice is delivered.
//   - Dedup: an update that changes nothing visible (same labels, annotations,
//     state, start) is not re-queued before the resend interval elapses.
//   - Resend: firing alerts are re-sent every ResendInterval so receivers that
//     restarted or time out alerts (Alertmanager resolves at endsAt) keep them.
//   - Delivery: each notifier has its own bounded queue keyed by fingerprint
//     (the newest state of an alert replaces an older queued one), its own
//     worker, and retries with exponential backoff. A slow or dead receiver never
//     blocks Send or the other notifiers. When a queue is full the oldest entry
//     is dropped and counted.
//   - Persistence: active alerts and undelivered queue entries are written to
//     StateFile (atomically) so a restart neither forgets firing alerts nor loses
//     resolved notices.
//
// Self-metrics, all with a "notifier" label:
// vigil_notifications_sent_total, vigil_notifications_failed_total,
// vigil_notifications_dropped_total, vigil_notification_queue_length;
// and vigil_alerts_active (no label).
package alert
