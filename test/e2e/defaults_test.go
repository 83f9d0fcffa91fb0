package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// copyShadow runs `cp /etc/shadow DIR/x` until seen reports the alert, and
// returns the pids of the cp processes it ran.
func copyShadow(t *testing.T, seen func() bool) map[string]bool {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "x")
	pids := map[string]bool{}
	if !testutil.WaitFor(20*time.Second, func() bool {
		cmd := exec.Command("cp", "/etc/shadow", dest)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids[strconv.Itoa(cmd.Process.Pid)] = true
		time.Sleep(300 * time.Millisecond)
		return seen()
	}) {
		t.Fatal("no SensitiveFileRead alert for cp /etc/shadow within 20s")
	}
	return pids
}

var cpPID = regexp.MustCompile(`cp \(pid (\d+), uid 0, parent [^)]+\) opened /etc/shadow`)

// `vigil trace alerts` with no arguments loads the embedded event pack and
// shows an alert for `cp /etc/shadow /tmp/x`.
func TestTraceAlertsDefaultPack(t *testing.T) {
	testutil.RequireBPF(t)
	p := start(t, vigilBin, "trace", "alerts")
	pids := copyShadow(t, func() bool { return strings.Contains(p.stdout.String(), "SensitiveFileRead") })
	if code := p.signal(t, syscall.SIGINT, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT; stderr:\n%s", code, p.stderr)
	}
	var row string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if strings.Contains(l, "SensitiveFileRead") {
			row = l
		}
	}
	m := cpPID.FindStringSubmatch(row)
	if m == nil || !pids[m[1]] {
		t.Fatalf("alert row %q does not name one of our cp processes %v", row, pids)
	}
	if f := strings.Fields(row); len(f) < 4 || f[1] != "warning" || f[3] != "host" {
		t.Errorf("row %q: want severity warning and container host", row)
	}
}

// `vigil trace alerts --no-default-rules` without rule files says what to do.
func TestTraceAlertsNoRules(t *testing.T) {
	code, _, stderr := runVigil(t, 10*time.Second, "trace", "alerts", "--no-default-rules")
	if code != 1 || !strings.Contains(stderr, "give --rules FILE or set event_rules.files") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// `vigil run` with no rule flags delivers the same alert to stdout.
func TestRunDeliversDefaultEventAlert(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	body := fmt.Sprintf("rules:\n  data_dir: %s\nalerting:\n  state_file: %s\n", filepath.Join(dir, "tsdb"), filepath.Join(dir, "alerts.json"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "--config", cfg)
	pids := copyShadow(t, func() bool { return strings.Contains(a.stdout.String(), "FIRING SensitiveFileRead") })
	var line string
	for _, l := range strings.Split(a.stdout.String(), "\n") {
		if strings.Contains(l, "FIRING SensitiveFileRead") {
			line = l
		}
	}
	m := regexp.MustCompile(` pid="(\d+)"`).FindStringSubmatch(line)
	if m == nil || !pids[m[1]] || !strings.Contains(line, `comm="cp"`) || !strings.Contains(line, `severity="warning"`) {
		t.Fatalf("alert line %q does not name one of our cp processes %v", line, pids)
	}
	if v := a.scrape(t).Value("vigil_rule_last_reload_successful", map[string]string{"engine": "event"}); v != 1 {
		t.Errorf("vigil_rule_last_reload_successful{engine=event} = %v", v)
	}
	if code := a.signal(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, a.stderr)
	}
}

// `vigil run --no-default-rules` loads neither embedded pack.
func TestRunNoDefaultRules(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	body := fmt.Sprintf("rules:\n  data_dir: %s\n  files: []\nalerting:\n  state_file: %s\n", filepath.Join(dir, "tsdb"), filepath.Join(dir, "alerts.json"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "--config", cfg, "--no-default-rules")
	m := a.scrape(t)
	if _, ok := m.Get("vigil_rule_last_reload_successful", map[string]string{"engine": "event"}); ok {
		t.Error("event rules loaded despite --no-default-rules")
	}
	if v, ok := m.Get("vigil_rules_loaded", nil); !ok || v != 0 {
		t.Errorf("vigil_rules_loaded = %v (found %v), want 0 metric rules", v, ok)
	}
	if code := a.signal(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, a.stderr)
	}
}
