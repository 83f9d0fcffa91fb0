package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, content, want string
	}{
		{"yaml syntax", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: a: b\n", "bad.yml:6: mapping values are not allowed"},
		{"unknown field", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    fro: 1m\n", "bad.yml:6: field fro not found"},
		{"bad promql", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(up[5m]\n", "bad.yml:5: group \"g\", rule 1 \"A\": could not parse expression"},
		{"unknown template func", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      ok: fine\n      summary: '{{ $value | nosuchfunc }}'\n", "bad.yml:8: group \"g\", rule 1 \"A\": annotation \"summary\""},
		{"bad duration", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5 minutes\n", "bad.yml:6:"},
		{"bad anomaly", "groups:\n- name: g\n  rules:\n  - alert: A\n    anomaly:\n      metric: 'rate(x[5m])'\n", "bad.yml:5: group \"g\", rule \"A\": anomaly: metric"},
		{"error after anomaly", "groups:\n- name: g\n  rules:\n  - alert: A\n    anomaly:\n      metric: x\n  - alert: B\n    expr: sum(\n", "bad.yml:7: group \"g\", rule 2 \"B\": could not parse expression"},
		{"missing expr", "groups:\n- name: g\n  rules:\n  - alert: A\n    for: 1m\n", "bad.yml:4: group \"g\", rule 1 \"A\": field 'expr' must be set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := Parse("bad.yml", []byte(c.content))
			if len(errs) == 0 {
				t.Fatalf("no error for %q", c.content)
			}
			if got := errs[0].Error(); !strings.HasPrefix(got, c.want) {
				t.Fatalf("error %q, want prefix %q", got, c.want)
			}
		})
	}
}

func TestAnomalyExpansionIsStandardPromQL(t *testing.T) {
	src := `groups:
- name: anomalies
  rules:
  - alert: ExecBurst
    anomaly:
      metric: vigil_exec_total
      by: [container]
      threshold: 4
      min_stddev: 0.1
    for: 2m
    labels:
      severity: warning
  - alert: ExecSeasonal
    anomaly:
      metric: vigil_exec_total
      kind: seasonal
      period: 1w
      direction: both
      min_delta: 1
`
	p, errs := Parse("a.yml", []byte(src))
	if errs != nil {
		t.Fatal(errs)
	}
	if !p.UsesShorthand {
		t.Fatal("shorthand not detected")
	}
	r := p.Groups.Groups[0].Rules[0]
	for _, want := range []string{"sum by (container) (rate(vigil_exec_total[5m]))", "avg_over_time(", "stddev_over_time(", "[1h:1m]", "clamp_min(", "> 4"} {
		if !strings.Contains(r.Expr, want) {
			t.Errorf("zscore expr lacks %q:\n%s", want, r.Expr)
		}
	}
	if r.Annotations["description"] == "" {
		t.Error("no default description")
	}
	s := p.Groups.Groups[0].Rules[1].Expr
	for _, want := range []string{"[30m:1m] offset 6d23h45m", "abs(", "and"} {
		if !strings.Contains(s, want) {
			t.Errorf("seasonal expr lacks %q:\n%s", want, s)
		}
	}
	// The expansion must be a file any Prometheus accepts.
	if _, errs := Parse("expanded.yml", p.Expanded); errs != nil {
		t.Fatalf("expanded file does not parse: %v", errs)
	}
	promtoolCheck(t, p.Expanded)
}

// promtoolCheck runs the Debian promtool over content when it is installed.
func promtoolCheck(t *testing.T, content []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus); skipping the promtool cross-check")
		return
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, content, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n--- file:\n%s", err, out, content)
	}
}
