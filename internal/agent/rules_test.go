package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	_ "github.com/vigilproject/vigil/internal/probe/all" // the event kinds the rules name
	"github.com/vigilproject/vigil/internal/testutil"
)

// recorder is an alert sink that keeps what it gets.
type recorder struct {
	mu     sync.Mutex
	alerts []alert.Alert
}

func (r *recorder) Send(_ string, as []alert.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, as...)
}

// find returns the last alert named name with label engine=engine.
func (r *recorder) find(name, engine string) (alert.Alert, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.alerts) - 1; i >= 0; i-- {
		a := r.alerts[i]
		if a.Labels["alertname"] == name && a.Labels["engine"] == engine {
			return a, true
		}
	}
	return alert.Alert{}, false
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const execRule = "- rule: %s\n  event: exec\n  condition: evt.filename == \"/nowhere/%s\"\n"

func rule(name string) string { return strings.ReplaceAll(execRule, "%s", name) }

// testConfig is the default config with only the given event rule files
// (no embedded pack), metric rules off and state under dir.
func testConfig(t *testing.T, dir string, files ...string) *config.Config {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	off := false
	cfg.EventRules.Builtin = &off
	cfg.EventRules.Files = files
	cfg.EventRules.WatchInterval = 0
	cfg.Rules.Enabled = &off
	cfg.Alerting.StateFile = filepath.Join(dir, "alerts.json")
	return cfg
}

// metric is the value of a series of the agent's registry (0 if absent).
func metric(t *testing.T, a *Agent, name string, labels map[string]string) float64 {
	t.Helper()
	m, err := testutil.Gather(a.Registry)
	if err != nil {
		t.Fatal(err)
	}
	return m.Value(name, labels)
}

// A broken event rule file on reload: the old rules stay in force, the
// shared reload metrics say so for engine="event", and VigilRuleReloadFailed
// fires until a good reload resolves it. Both engines reload on the one
// SIGHUP path.
func TestEventRuleReloadFailureKeepsRulesAndAlerts(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "events.yaml")
	write(t, f, rule("A"))
	mf := filepath.Join(dir, "metrics.yml")
	write(t, mf, "groups:\n- name: g\n  rules:\n  - alert: Always\n    expr: vector(1)\n")
	cfg := testConfig(t, dir, f)
	on := true
	cfg.Rules.Enabled = &on
	cfg.Rules.Builtin = new(bool)
	cfg.Rules.Files = []string{mf}
	cfg.Rules.DataDir = filepath.Join(dir, "tsdb")
	rec := &recorder{}
	a, err := Open(cfg, slog.New(slog.DiscardHandler), Options{Probes: []string{}, EventRules: true, Alerting: true, AlertSink: rec})
	if err != nil {
		t.Fatal(err)
	}
	deliver, err := a.startDelivery()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); _ = a.metricRules.Close(); deliver(context.Background()) }()
	event := map[string]string{"engine": "event"}
	metricEngine := map[string]string{"engine": "metric"}
	if v := metric(t, a, "vigil_rule_last_reload_successful", event); v != 1 {
		t.Fatalf("event engine reload gauge %v after start", v)
	}

	write(t, f, rule("B")+"  severity: nope\n  bad_key: 1\n")
	go a.reloadOnHUP(ctx)
	time.Sleep(50 * time.Millisecond) // let signal.Notify take SIGHUP from the default action
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !testutil.WaitFor(5*time.Second, func() bool {
		return metric(t, a, "vigil_rule_reloads_total", map[string]string{"engine": "event", "result": "failure"}) == 1 &&
			metric(t, a, "vigil_rule_reloads_total", map[string]string{"engine": "metric", "result": "success"}) == 2
	}) {
		t.Fatalf("SIGHUP did not reload both engines: event failures %v, metric successes %v",
			metric(t, a, "vigil_rule_reloads_total", map[string]string{"engine": "event", "result": "failure"}),
			metric(t, a, "vigil_rule_reloads_total", map[string]string{"engine": "metric", "result": "success"}))
	}
	if v := metric(t, a, "vigil_rule_last_reload_successful", event); v != 0 {
		t.Errorf("vigil_rule_last_reload_successful{engine=event} = %v after a failed reload", v)
	}
	if v := metric(t, a, "vigil_rule_last_reload_successful", metricEngine); v != 1 {
		t.Errorf("vigil_rule_last_reload_successful{engine=metric} = %v", v)
	}
	if rs := a.er.engine.Ruleset(); len(rs.Rules) != 1 || rs.Rules[0].Name != "A" {
		t.Errorf("rules in force after a failed reload: %+v, want the old rule A", rs.Rules)
	}
	al, ok := rec.find("VigilRuleReloadFailed", "event")
	if !ok || !al.EndsAt.IsZero() {
		t.Fatalf("VigilRuleReloadFailed{engine=event} not firing: %+v", rec.alerts)
	}
	if !strings.Contains(al.Annotations["description"], f+":") {
		t.Errorf("alert description %q does not name %s:line", al.Annotations["description"], f)
	}

	write(t, f, rule("B"))
	a.ReloadRules()
	if v := metric(t, a, "vigil_rule_last_reload_successful", event); v != 1 {
		t.Errorf("vigil_rule_last_reload_successful{engine=event} = %v after a good reload", v)
	}
	if rs := a.er.engine.Ruleset(); rs.Rules[0].Name != "B" {
		t.Errorf("rule %s in force after a good reload, want B", rs.Rules[0].Name)
	}
	if al, _ := rec.find("VigilRuleReloadFailed", "event"); al.EndsAt.IsZero() {
		t.Error("VigilRuleReloadFailed{engine=event} not resolved after a good reload")
	}
}

// A Kubernetes ConfigMap update swaps the ..data symlink to a new directory;
// the file keeps its name, size and (here) mtime. The watcher must reload.
func TestEventRulesReloadOnConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	old, cur := filepath.Join(dir, "..2026_01"), filepath.Join(dir, "..2026_02")
	for d, name := range map[string]string{old: "A", cur: "B"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "events.yaml"), rule(name))
		mtime := time.Unix(1700000000, 0)
		if err := os.Chtimes(filepath.Join(d, "events.yaml"), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/events.yaml", filepath.Join(dir, "events.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, filepath.Join(dir, "*.yaml"))
	cfg.EventRules.WatchInterval = 20 * time.Millisecond
	a, err := Open(cfg, slog.New(slog.DiscardHandler), Options{Probes: []string{}, EventRules: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.er.engine.Ruleset().Rules[0].Name; got != "A" {
		t.Fatalf("rule %s at start, want A", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); a.er.wait() }()
	a.er.setSinks(&recorder{}, nil)
	go a.er.run(ctx)
	time.Sleep(100 * time.Millisecond) // a few polls of the unchanged files

	// The swap, as the kubelet does it: a new link renamed over ..data.
	if err := os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return a.er.engine.Ruleset().Rules[0].Name == "B" }) {
		t.Fatalf("rule %s after the symlink swap, want B", a.er.engine.Ruleset().Rules[0].Name)
	}
	if v := metric(t, a, "vigil_rule_reloads_total", map[string]string{"engine": "event", "result": "success"}); v != 2 {
		t.Errorf("event reloads %v, want 2 (start and swap)", v)
	}
}
