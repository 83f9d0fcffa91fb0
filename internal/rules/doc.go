// Package rules evaluates Prometheus rule files on the node, over vigil's own
// metrics, with the Prometheus rule engine used as a library.
//
// Data path: a feeder gathers the agent's registry every feed_interval and
// appends the samples (counters, gauges, classic histograms and summaries as
// Prometheus would scrape them, with staleness markers for vanished series)
// into a local TSDB (github.com/prometheus/prometheus/tsdb) bounded by
// retention and size. The Prometheus rule manager evaluates the rule groups
// with the PromQL engine against that TSDB, writes recording rules and the
// ALERTS / ALERTS_FOR_STATE series back into it (so `for` clocks survive a
// restart), and hands alerts to an alert.Dispatcher.
//
// Rule files are standard Prometheus rule files. One vigil extension, the
// `anomaly:` shorthand (see Anomaly), replaces `expr:` and expands to plain
// PromQL; Parse returns the expanded, standard file (`vigil rules check
// --expand`). Every error names the file and line.
//
// Reloads (Engine.Reload, called on SIGHUP and when the watched files change)
// compile the new set aside and swap it in only if every file is valid; a
// failed reload keeps the running rules, sets
// vigil_rule_last_reload_successful{engine="metric"} to 0 and fires the
// internal VigilRuleReloadFailed{engine="metric"} alert until a reload
// succeeds. The watcher and the reload metrics are internal/rulewatch's,
// shared with the event-rule engine; SIGHUP is the agent's.
//
// RulesHandler and AlertsHandler serve /api/v1/rules and /api/v1/alerts in
// the Prometheus HTTP API shape.
package rules
