package rules

import (
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/alert/alerttest"
)

const execRule = `groups:
- name: exec
  interval: 1s
  rules:
  - alert: ExecBurst
    expr: sum by (comm) (rate(vigil_test_exec_total[5s])) > 5
    for: 2s
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.comm }} exec rate {{ $value | printf "%.0f" }}/s on {{ $externalLabels.host }}'
`

// TestFiringAndResolvedReachAlertmanager drives a metric over a threshold
// and measures how long the alert takes to show up in a real Alertmanager,
// and to be resolved there after the activity stops.
func TestFiringAndResolvedReachAlertmanager(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	am := alerttest.Start(t)
	amn, _ := alert.NewAlertmanager(am.URL, nil, nil)
	dir := t.TempDir()
	a := startAgent(t, agentOpts{dir: dir, notifiers: []alert.Notifier{amn},
		files: []string{writeFile(t, filepath.Join(dir, "exec.yml"), execRule)}})

	stop := a.drive(30)
	got, took, ok := am.WaitFiring("ExecBurst", 15*time.Second)
	if !ok {
		stop()
		t.Fatal("ExecBurst never reached Alertmanager")
	}
	// Budget: feed (1s) + rate needs two samples (1s) + eval interval (1s) +
	// for (2s) + a few seconds of slack.
	t.Logf("activity start → firing in Alertmanager: %v (interval 1s, for 2s)", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("firing latency %v exceeds interval + for + a few seconds", took)
	}
	if got.Labels["host"] != "testhost" || got.Labels["severity"] != "page" || got.Labels["comm"] != "sh" {
		t.Errorf("labels %v", got.Labels)
	}
	if !regexp.MustCompile(`^sh exec rate \d+/s on testhost$`).MatchString(got.Annotations["summary"]) {
		t.Errorf("summary %q not rendered from the template", got.Annotations["summary"])
	}
	if got.StartsAt.IsZero() {
		t.Error("no startsAt")
	}

	stop()
	took, ok = am.WaitResolved("ExecBurst", 20*time.Second)
	if !ok {
		t.Fatal("ExecBurst never resolved in Alertmanager")
	}
	// The 5s rate window must drain first.
	t.Logf("activity stop → resolved in Alertmanager: %v (rate window 5s)", took.Round(10*time.Millisecond))
}

// TestAlertmanagerDownWhileFiring: an alert raised while Alertmanager is
// down arrives after it comes back.
func TestAlertmanagerDownWhileFiring(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	am := alerttest.Start(t)
	amn, _ := alert.NewAlertmanager(am.URL, nil, nil)
	dir := t.TempDir()
	a := startAgent(t, agentOpts{dir: dir, notifiers: []alert.Notifier{amn},
		files: []string{writeFile(t, filepath.Join(dir, "exec.yml"), execRule)}})
	am.Stop()
	stop := a.drive(30)
	defer stop()
	waitUntil(t, "ExecBurst firing in the engine", 15*time.Second, func() bool {
		s, _ := a.ruleState("ExecBurst")
		return s == "firing"
	})
	time.Sleep(2 * time.Second) // a few failed deliveries
	am.Restart()
	_, took, ok := am.WaitFiring("ExecBurst", 15*time.Second)
	if !ok {
		t.Fatal("alert raised while Alertmanager was down never arrived")
	}
	t.Logf("arrived %v after Alertmanager restarted", took.Round(10*time.Millisecond))
}

// TestRestartKeepsForState stops the agent while an alert is pending and
// again while it is firing, and checks that `for` is not reset.
func TestRestartKeepsForState(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	const rule = `groups:
- name: exec
  interval: 1s
  rules:
  - alert: SlowBurn
    expr: sum by (comm) (rate(vigil_test_exec_total[5s])) > 5
    for: 8s
`
	dir := t.TempDir()
	files := []string{writeFile(t, filepath.Join(dir, "slow.yml"), rule)}
	rec := &sink{}
	a := startAgent(t, agentOpts{dir: dir, files: files, notifiers: []alert.Notifier{rec}})
	stop := a.drive(30)
	var activeAt time.Time
	waitUntil(t, "SlowBurn pending", 10*time.Second, func() bool {
		s, at := a.ruleState("SlowBurn")
		activeAt = at
		return s == "pending"
	})
	time.Sleep(5 * time.Second)
	stop()
	a.stop()

	// Restart with the same data dir while pending.
	restart := time.Now()
	b := startAgent(t, agentOpts{dir: dir, files: files, notifiers: []alert.Notifier{rec}})
	stop = b.drive(30)
	defer stop()
	var restored time.Time
	waitUntil(t, "SlowBurn pending again", 10*time.Second, func() bool {
		s, at := b.ruleState("SlowBurn")
		restored = at
		// activeAt changes from "now" to the restored time after the
		// first evaluation; wait for that.
		return s != "inactive" && at.Before(restart)
	})
	// Prometheus' restore pauses the clock while the agent is down: the
	// restored activeAt is the old one shifted by the downtime, well before
	// the restart. A reset clock would start at or after the restart.
	t.Logf("activeAt before restart %v, after restart %v (restart at %v)",
		activeAt.Format(time.StampMilli), restored.Format(time.StampMilli), restart.Format(time.StampMilli))
	if restart.Sub(restored) < 2*time.Second {
		t.Errorf("restored activeAt %v is not well before the restart %v", restored, restart)
	}
	waitUntil(t, "SlowBurn firing", 15*time.Second, func() bool {
		s, _ := b.ruleState("SlowBurn")
		return s == "firing"
	})
	firedAfter := time.Since(restart)
	t.Logf("fired %v after the restart (for: 8s; it had been pending ~5s)", firedAfter.Round(10*time.Millisecond))
	// A reset clock cannot fire before a whole `for` after the restart.
	if firedAfter >= 8*time.Second {
		t.Errorf("fired %v after restart: the for clock was reset", firedAfter)
	}

	// Restart while firing: it fires again at once instead of after 8s.
	b.stop()
	restart = time.Now()
	c := startAgent(t, agentOpts{dir: dir, files: files, notifiers: []alert.Notifier{rec}})
	stop2 := c.drive(30)
	defer stop2()
	took := waitUntil(t, "SlowBurn firing after restart", 15*time.Second, func() bool {
		s, _ := c.ruleState("SlowBurn")
		return s == "firing"
	})
	t.Logf("firing again %v after a restart while firing", took.Round(10*time.Millisecond))
	if took >= 8*time.Second {
		t.Errorf("restart while firing waited the whole for period (%v)", took)
	}
}
