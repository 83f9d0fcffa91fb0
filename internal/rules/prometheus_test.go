package rules

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestSameAlertAsRealPrometheus loads one rule file into the agent and into
// a real Prometheus (Debian package prometheus) that scrapes the same
// registry over HTTP; both must raise the same alert.
func TestSameAlertAsRealPrometheus(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	if testing.Short() {
		t.Skip("-short: skipping test with a real Prometheus")
	}
	const rule = `groups:
- name: exec
  interval: 1s
  rules:
  - alert: ExecBurst
    expr: sum by (comm) (rate(vigil_test_exec_total[5s])) > 5
    for: 2s
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.comm }} is exec-heavy on {{ $externalLabels.host }}'
`
	dir := t.TempDir()
	ruleFile := writeFile(t, filepath.Join(dir, "exec.yml"), rule)
	a := startAgent(t, agentOpts{dir: dir, files: []string{ruleFile}})

	// Expose the same registry for Prometheus to scrape.
	srv := httptest.NewServer(promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	promURL := startPrometheus(t, dir, ruleFile, srv.Listener.Addr().String(), "testhost")

	stop := a.drive(30)
	defer stop()
	var promAlert, edgeAlert *APIAlert
	start := time.Now()
	var edgeAt, promAt time.Duration
	waitUntil(t, "both firing", 30*time.Second, func() bool {
		if edgeAlert == nil {
			if al := firingAlert(a.eng.Alerts(), "ExecBurst"); al != nil {
				edgeAlert, edgeAt = al, time.Since(start)
			}
		}
		if promAlert == nil {
			if al := firingAlert(getAlerts(t, promURL), "ExecBurst"); al != nil {
				promAlert, promAt = al, time.Since(start)
			}
		}
		return edgeAlert != nil && promAlert != nil
	})
	t.Logf("firing at the edge after %v, in Prometheus after %v", edgeAt.Round(10*time.Millisecond), promAt.Round(10*time.Millisecond))
	// Prometheus adds the scrape's job/instance only to raw series; the
	// rule aggregates them away, so label sets must be identical.
	if !maps.Equal(edgeAlert.Labels, promAlert.Labels) {
		t.Errorf("labels differ: edge %v, Prometheus %v", edgeAlert.Labels, promAlert.Labels)
	}
	if !maps.Equal(edgeAlert.Annotations, promAlert.Annotations) {
		t.Errorf("annotations differ: edge %v, Prometheus %v", edgeAlert.Annotations, promAlert.Annotations)
	}

	// /api/v1/rules: every field Prometheus returns for the group and the
	// rule is present in vigil's answer too.
	api := httptest.NewServer(a.eng.RulesHandler())
	defer api.Close()
	edgeGroup, edgeRule := firstRule(t, api.URL+"/api/v1/rules")
	promGroup, promRule := firstRule(t, promURL+"/api/v1/rules")
	for k := range promGroup {
		if _, ok := edgeGroup[k]; !ok {
			t.Errorf("/api/v1/rules group lacks %q (Prometheus has it)", k)
		}
	}
	for k := range promRule {
		if _, ok := edgeRule[k]; !ok {
			t.Errorf("/api/v1/rules rule lacks %q (Prometheus has it)", k)
		}
	}
	if edgeRule["query"] != promRule["query"] || edgeRule["state"] != promRule["state"] {
		t.Errorf("rule differs: edge %v / %v, Prometheus %v / %v", edgeRule["query"], edgeRule["state"], promRule["query"], promRule["state"])
	}
}

func firstRule(t *testing.T, url string) (group, rule map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct{ Groups []map[string]any }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" || len(r.Data.Groups) == 0 {
		t.Fatalf("GET %s: %v %+v", url, err, r)
	}
	g := r.Data.Groups[0]
	return g, g["rules"].([]any)[0].(map[string]any)
}

func firingAlert(as []APIAlert, name string) *APIAlert {
	for _, a := range as {
		if a.Labels["alertname"] == name && a.State == "firing" {
			return &a
		}
	}
	return nil
}

func getAlerts(t *testing.T, base string) []APIAlert {
	resp, err := http.Get(base + "/api/v1/alerts")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Alerts []APIAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Logf("decoding Prometheus alerts: %v", err)
	}
	return r.Data.Alerts
}
