package rules

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// series appends a counter growing at rate(i) per second, one sample every
// 15s from start for n steps, to app.
func appendCounter(t *testing.T, app storage.Appender, comm string, start time.Time, n int, rate func(i int) float64) {
	t.Helper()
	lset := labels.FromStrings(labels.MetricName, "vigil_test_exec_total", "comm", comm)
	v := 0.0
	for i := range n {
		v += rate(i) * 15
		if _, err := app.Append(0, lset, start.Add(time.Duration(i)*15*time.Second).UnixMilli(), v); err != nil {
			t.Fatal(err)
		}
	}
}

// evalGroup loads file into a fresh rule group on the engine's storage and
// returns a function that evaluates it at ts and reports the firing alerts.
func evalGroup(t *testing.T, e *Engine, file string) func(ts time.Time) map[string]float64 {
	t.Helper()
	groups, errs := e.Manager().LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, file)
	if errs != nil {
		t.Fatal(errs)
	}
	if len(groups) != 1 {
		t.Fatalf("%d groups", len(groups))
	}
	var g *promrules.Group
	for _, g = range groups {
	}
	return func(ts time.Time) map[string]float64 {
		g.Eval(context.Background(), ts)
		out := map[string]float64{}
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil {
				t.Fatalf("rule %s: %v", r.Name(), err)
			}
			for _, a := range r.(*promrules.AlertingRule).ActiveAlerts() {
				if a.State == promrules.StateFiring {
					out[a.Labels.Get("comm")] = a.Value
				}
			}
		}
		return out
	}
}

func TestZScoreFiresOnBurstNotOnSteady(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "z.yml"), `groups:
- name: anomalies
  rules:
  - alert: ExecRateAnomaly
    anomaly:
      metric: vigil_test_exec_total
      by: [comm]
      threshold: 3
`)
	a := newAgent(t, agentOpts{dir: dir, files: []string{file}})
	defer a.eng.Close()

	// Two hours of steady activity (10/s ± 10% noise), then a burst at 40/s.
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	rng := rand.New(rand.NewPCG(1, 2))
	const steadySteps, burstSteps = 480, 40
	app := a.eng.DB().Appender(context.Background())
	appendCounter(t, app, "sh", base, steadySteps+burstSteps, func(i int) float64 {
		if i >= steadySteps {
			return 40
		}
		return 10 * (1 + 0.1*(2*rng.Float64()-1))
	})
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	eval := evalGroup(t, a.eng, file)
	for m := 70; m <= 119; m++ { // every minute of the second steady hour
		if fired := eval(base.Add(time.Duration(m) * time.Minute)); len(fired) > 0 {
			t.Fatalf("z-score rule fired on steady activity at minute %d: %v", m, fired)
		}
	}
	burst := base.Add(steadySteps * 15 * time.Second)
	fired := eval(burst.Add(2 * time.Minute))
	if z, ok := fired["sh"]; !ok {
		t.Fatal("z-score rule did not fire 2 minutes into a 4x burst")
	} else {
		t.Logf("burst z-score %.1f", z)
	}
}

// TestSeasonalAgainstBackfilledData writes "yesterday" into a TSDB block the
// way promtool's backfill does, then checks that today's values are compared
// with the same time yesterday.
func TestSeasonalAgainstBackfilledData(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "s.yml"), `groups:
- name: seasonal
  rules:
  - alert: ExecRateUnusualForTimeOfDay
    anomaly:
      metric: vigil_test_exec_total
      kind: seasonal
      period: 1d
      by: [comm]
      tolerance: 0.5
`)
	now := time.Now().Truncate(time.Minute)
	yesterday := now.Add(-24*time.Hour - 45*time.Minute)
	bw, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), filepath.Join(dir, "tsdb"), int64(2*time.Hour/time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	app := bw.Appender(context.Background())
	for _, comm := range []string{"steady", "surge", "quiet"} {
		appendCounter(t, app, comm, yesterday, 300, func(int) float64 { return 10 }) // 75 minutes
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	bw.Close()

	a := newAgent(t, agentOpts{dir: dir, files: []string{file}})
	defer a.eng.Close()
	if n := len(a.eng.DB().Blocks()); n != 1 {
		t.Fatalf("backfilled block not loaded: %d blocks", n)
	}
	today := now.Add(-20 * time.Minute)
	app2 := a.eng.DB().Appender(context.Background())
	appendCounter(t, app2, "steady", today, 81, func(int) float64 { return 11 })
	appendCounter(t, app2, "surge", today, 81, func(int) float64 { return 30 })
	appendCounter(t, app2, "quiet", today, 81, func(int) float64 { return 1 })
	if err := app2.Commit(); err != nil {
		t.Fatal(err)
	}
	fired := evalGroup(t, a.eng, file)(now)
	if _, ok := fired["surge"]; !ok || len(fired) != 1 {
		t.Fatalf("fired for %v; want only surge (30/s vs 10/s yesterday; steady 11/s is within ±50%%, quiet is below and direction is up)", fired)
	}
	t.Logf("surge deviation from yesterday: %.1f/s", fired["surge"])
}
