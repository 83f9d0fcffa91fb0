package rules

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilproject/vigil/internal/alert"
)

const alwaysRule = `groups:
- name: always
  interval: 1s
  rules:
  - alert: AlwaysOn
    expr: vector(1)
    annotations:
      summary: ok
`

func TestBadStartupFileIsFatalWithLine(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "bad.yml"), "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(\n")
	_, err := New(Options{Config: Config{Files: []string{f}, DataDir: filepath.Join(dir, "tsdb")}})
	if err == nil || !strings.Contains(err.Error(), f+":5:") {
		t.Fatalf("err = %v, want %s:5:", err, f)
	}
}

// TestFailedReloadKeepsOldRules breaks the rule file three ways; each reload
// fails with file:line, the old rule keeps being evaluated, the reload gauge
// drops to 0 and an internal alert fires. Fixing the file (picked up by the
// file watcher) restores everything.
func TestFailedReloadKeepsOldRules(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "r.yml"), alwaysRule)
	rec := &sink{}
	a := startAgent(t, agentOpts{dir: dir, files: []string{f}, notifiers: []alert.Notifier{rec},
		cfg: func(c *Config) { c.WatchInterval = 0 }}) // default 10s: reloads below are explicit
	waitUntil(t, "AlwaysOn firing", 5*time.Second, func() bool { s, _ := a.ruleState("AlwaysOn"); return s == "firing" })

	broken := map[string]struct{ content, want string }{
		"yaml":     {"groups:\n- name: always\n  rules:\n  - alert: AlwaysOn\n    expr: vector(1)\n    for: a: b\n", ":6: mapping values are not allowed"},
		"promql":   {"groups:\n- name: always\n  rules:\n  - alert: AlwaysOn\n    expr: vector(1) +\n", ":5: group \"always\", rule 1 \"AlwaysOn\": could not parse expression"},
		"template": {"groups:\n- name: always\n  rules:\n  - alert: AlwaysOn\n    expr: vector(1)\n    annotations:\n      summary: '{{ humanizeNope $value }}'\n", ":7: group \"always\", rule 1 \"AlwaysOn\": annotation \"summary\""},
	}
	for name, c := range broken {
		writeFile(t, f, c.content)
		err := a.eng.Reload()
		if err == nil || !strings.Contains(err.Error(), f+c.want) {
			t.Fatalf("%s: reload error %v, want %s%s", name, err, f, c.want)
		}
		if v := testutil.ToFloat64(a.eng.m.reloadOK); v != 0 {
			t.Fatalf("%s: vigil_rules_last_reload_successful = %v", name, v)
		}
		// The old rule is still evaluated.
		before := a.eng.Manager().RuleGroups()[0].GetLastEvaluation()
		waitUntil(t, "an evaluation of the old rules", 3*time.Second, func() bool {
			return a.eng.Manager().RuleGroups()[0].GetLastEvaluation().After(before)
		})
		if s, _ := a.ruleState("AlwaysOn"); s != "firing" {
			t.Fatalf("%s: old rule state %s after failed reload", name, s)
		}
		if !hasAlert(a.eng.Alerts(), "VigilRuleReloadFailed") {
			t.Fatalf("%s: no internal VigilRuleReloadFailed alert in /api/v1/alerts", name)
		}
	}
	waitUntil(t, "VigilRuleReloadFailed delivered", 5*time.Second, func() bool { return rec.find("VigilRuleReloadFailed", false) })

	// Fix the file (TestFileWatchReloads covers the watcher; SIGHUP calls Reload).
	writeFile(t, f, strings.Replace(alwaysRule, "summary: ok", "summary: fixed", 1))
	if err := a.eng.Reload(); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(a.eng.m.reloadOK); v != 1 {
		t.Fatalf("vigil_rules_last_reload_successful = %v after a good reload", v)
	}
	waitUntil(t, "VigilRuleReloadFailed resolved", 5*time.Second, func() bool { return rec.find("VigilRuleReloadFailed", true) })
	if hasAlert(a.eng.Alerts(), "VigilRuleReloadFailed") {
		t.Fatal("internal alert still listed after a good reload")
	}
}

func TestFileWatchReloads(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "r.yml"), alwaysRule)
	a := startAgent(t, agentOpts{dir: dir, files: []string{filepath.Join(dir, "*.yml")}})
	waitUntil(t, "AlwaysOn firing", 5*time.Second, func() bool { s, _ := a.ruleState("AlwaysOn"); return s == "firing" })
	writeFile(t, f, "groups: [") // broken: the watcher must not drop the running rules
	time.Sleep(time.Second)
	if n := len(a.eng.Manager().RuleGroups()); n != 1 || a.eng.LastReloadError() == nil {
		t.Fatalf("after a broken edit: %d groups, reload error %v", n, a.eng.LastReloadError())
	}
	writeFile(t, f, alwaysRule)
	writeFile(t, filepath.Join(dir, "second.yml"), strings.ReplaceAll(alwaysRule, "always", "second"))
	took := waitUntil(t, "second file picked up", 5*time.Second, func() bool { return len(a.eng.Manager().RuleGroups()) == 2 })
	t.Logf("new rule file loaded %v after it was written (watch interval 200ms)", took)
}

func hasAlert(as []APIAlert, name string) bool {
	for _, a := range as {
		if a.Labels["alertname"] == name {
			return true
		}
	}
	return false
}

// TestReloadAlertResolvedAfterRestart: the agent stops while
// VigilRuleReloadFailed fires (it is in the state file); after a restart
// with good rules it is resolved instead of lingering forever.
func TestReloadAlertResolvedAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "r.yml"), alwaysRule)
	a := startAgent(t, agentOpts{dir: dir, files: []string{f}})
	writeFile(t, f, "groups: [")
	if a.eng.Reload() == nil {
		t.Fatal("broken file reloaded")
	}
	a.stop()
	writeFile(t, f, alwaysRule)
	rec := &sink{}
	b := startAgent(t, agentOpts{dir: dir, files: []string{f}, notifiers: []alert.Notifier{rec}})
	if hasAlert(b.eng.Alerts(), "VigilRuleReloadFailed") {
		t.Fatal("VigilRuleReloadFailed still active after a restart with good rules")
	}
	waitUntil(t, "resolved notice", 5*time.Second, func() bool { return rec.find("VigilRuleReloadFailed", true) })
}

func TestSecondEngineOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Options{Config: Config{DataDir: dir, Builtin: new(bool)}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var logs strings.Builder
	b, err := New(Options{Config: Config{DataDir: dir, Builtin: new(bool)},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("second engine on a locked data dir: %v", err)
	}
	tmp := b.DB().Dir()
	if tmp == dir || !strings.Contains(logs.String(), "rules.data_dir is locked by another process") {
		t.Fatalf("second engine uses %s; log: %s", tmp, logs.String())
	}
	b.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary TSDB %s not removed: %v", tmp, err)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.yml"), alwaysRule)
	if err := CheckFiles(Config{Files: []string{filepath.Join(dir, "*.yml")}}); err != nil {
		t.Fatal(err)
	}
	bad := writeFile(t, filepath.Join(dir, "bad.yml"), "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(\n")
	if err := CheckFiles(Config{Files: []string{filepath.Join(dir, "*.yml")}}); err == nil || !strings.Contains(err.Error(), bad+":5:") {
		t.Fatalf("err %v", err)
	}
}
