package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRuleLibrary checks every shipped rule file with vigil's loader and
// with promtool (expanded form for files using the shorthand).
func TestRuleLibrary(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/rules/metrics/*.yml")
	if len(files) < 3 {
		t.Fatalf("rule library not found: %v", files)
	}
	for _, f := range files {
		p, errs := LoadFile(f)
		if errs != nil {
			t.Fatalf("%v", errs)
		}
		if p.UsesShorthand != (filepath.Base(f) == "anomaly-shorthand.yml") {
			t.Errorf("%s: shorthand use %v is unexpected", f, p.UsesShorthand)
		}
		promtoolCheck(t, p.Expanded)
	}
}

func TestBuiltinMatchesLibrary(t *testing.T) {
	lib, err := os.ReadFile("../../deploy/rules/metrics/vigil-agent.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lib, builtinYAML) {
		t.Fatal("internal/rules/builtin.yml differs from deploy/rules/metrics/vigil-agent.yml; copy it over")
	}
}

func TestBuiltinLoads(t *testing.T) {
	dir := t.TempDir()
	e, err := New(Options{Config: Config{DataDir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	gs := e.Manager().RuleGroups()
	if len(gs) != 1 || gs[0].File() != BuiltinFile || gs[0].Name() != "vigil-agent" {
		t.Fatalf("groups %v", gs)
	}
}
