package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRulesCheckDispatchesByFileKind(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	prom := write("prom.yml", "groups:\n  - name: g\n    rules:\n      - alert: Up\n        expr: up == 0\n")
	ev := write("events.yaml", "- rule: A\n  event: exec\n  condition: proc.name == \"x\"\n")
	if err := checkRuleFiles([]string{prom, ev}, false); err != nil {
		t.Fatalf("valid files: %v", err)
	}
	badProm := write("bad.yml", "groups:\n  - name: g\n    rules:\n      - alert: Up\n        expr: up ==\n")
	if err := checkRuleFiles([]string{badProm}, false); err == nil {
		t.Fatal("a bad Prometheus rule file passed")
	}
	badEv := write("bad.yaml", "- rule: A\n  event: exec\n  condition: proc.name == 1\n")
	if err := checkRuleFiles([]string{badEv}, false); err == nil {
		t.Fatal("a bad event rule file passed")
	}
}
