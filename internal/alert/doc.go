// Package alert delivers alerts from vigil's rule engines to the outside
// world: Alertmanager (API v2), generic webhooks (Alertmanager webhook JSON
// shape) and stdout/log.
//
// Both rule engines use the same path. The metric-rule engine
// (internal/rules) hands over the alerts produced by the embedded Prometheus
// rule manager; the event-rule engine builds Alert values itself:
//
//	d, err := alert.NewDispatcher(alert.Options{
//		Notifiers:      []alert.Notifier{alert.NewAlertmanager(cfg), alert.NewStdout(os.Stdout)},
//		StateFile:      "/var/lib/vigil/alerts.json",
//		ExternalLabels: map[string]string{"host": hostname},
//		Registerer:     reg,
//	})
//	go d.Run(ctx)              // queues, retries, resends; returns when ctx ends
//	d.Send(ctx, []alert.Alert{{
//		Labels:      map[string]string{"alertname": "ShellInContainer", "severity": "critical"},
//		Annotations: map[string]string{"summary": "bash started in nginx"},
//		StartsAt:    time.Now(),
//		EndsAt:      time.Now().Add(10 * time.Minute), // or zero: firing until sent again resolved
//	}})
//	...
//	d.Close()                  // flushes state to disk
//
// Semantics:
//
//   - Identity: an alert is identified by its label set (Fingerprint). Sending
//     the same labels again updates the alert; it is not a new one.
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
