package eventrules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The embedded pack is the deploy/rules/events files, byte for byte in
// effect: it compiles to the same rules.
func TestBuiltinPackIsTheDeployPack(t *testing.T) {
	builtin, ds := LoadFiles(BuiltinFiles(), DefaultOptions())
	if ds.Err() != nil {
		t.Fatal(ds.Err())
	}
	deployed, ds := LoadFiles(defaultPack(t), DefaultOptions())
	if ds.Err() != nil {
		t.Fatal(ds.Err())
	}
	if len(BuiltinFiles()) != len(defaultPack(t)) || builtin.Summary() != deployed.Summary() {
		t.Fatalf("embedded pack %q: %s; deploy pack: %s", BuiltinFiles(), builtin.Summary(), deployed.Summary())
	}
}

// A user file that defines a pack rule again replaces it instead of failing
// with "already defined"; a copy of the whole pack loads too.
func TestUserFileOverridesBuiltinItems(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "mine.yaml")
	const mine = "- rule: ExecFromTempOrMemory\n  event: exec\n  condition: evt.filename == \"/opt/x\"\n  severity: critical\n"
	if err := os.WriteFile(f, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, ds := LoadFiles(append(BuiltinFiles(), f), DefaultOptions())
	if ds.Err() != nil {
		t.Fatal(ds.Err())
	}
	n := 0
	for _, r := range rs.Rules {
		if r.Name == "ExecFromTempOrMemory" {
			n++
			if r.Severity != "critical" {
				t.Errorf("the pack's rule is in force (severity %s), want the user's", r.Severity)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d rules named ExecFromTempOrMemory, want 1", n)
	}
	pack, _ := LoadFiles(BuiltinFiles(), DefaultOptions())
	if len(rs.Rules) != len(pack.Rules) {
		t.Errorf("%d rules with the override, want the pack's %d", len(rs.Rules), len(pack.Rules))
	}

	// The pack copied next to itself: every item overridden, nothing twice.
	both, ds := LoadFiles(append(BuiltinFiles(), defaultPack(t)...), DefaultOptions())
	if ds.Err() != nil {
		t.Fatalf("pack plus its copy: %v", ds.Err())
	}
	if both.Summary() != pack.Summary() {
		t.Errorf("pack plus its copy: %s, want %s", both.Summary(), pack.Summary())
	}
	// Two user files defining the same rule are still an error.
	dup, _ := LoadFiles([]string{f, f}, DefaultOptions())
	if dup != nil {
		t.Error("a rule defined twice in user files was accepted")
	}
	if !slices.ContainsFunc(BuiltinFiles(), func(s string) bool { return strings.HasSuffix(s, "process.yaml") }) {
		t.Errorf("builtin files %v", BuiltinFiles())
	}
}
