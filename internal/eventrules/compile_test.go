package eventrules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func compileErr(t *testing.T, src string) Diags {
	t.Helper()
	rs, ds := Compile("rules.yaml", []byte(src), DefaultOptions())
	if rs != nil || ds.Err() == nil {
		t.Fatalf("want an error, got ruleset with diags %v", ds)
	}
	return ds
}

func wantDiag(t *testing.T, ds Diags, line int, substr string) {
	t.Helper()
	for _, d := range ds {
		if d.Line == line && strings.Contains(d.String(), substr) {
			return
		}
	}
	t.Fatalf("no diagnostic at line %d containing %q; got:\n%v", line, substr, ds)
}

func TestCompileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		substr    string
	}{
		{"unknown field", "- rule: A\n  event: exec\n  condition: true\n  severty: warning\n", 4, `unknown field "severty" in rule`},
		{"unknown CEL field", "- rule: A\n  event: exec\n  condition: proc.nam == \"x\"\n", 3, `rules.yaml:3:14: error: condition: unknown field "proc.nam" (known: `},
		{"type error", "- rule: A\n  event: exec\n  condition: proc.pid == \"1\"\n", 3, "no matching overload for '_==_'"},
		{"not bool", "- rule: A\n  event: exec\n  condition: proc.pid + 1\n", 3, "condition must be bool, not int"},
		{"unknown event", "- rule: A\n  event: opne\n  condition: true\n", 2, `unknown event "opne"`},
		{"syntax", "- rule: A\n  event: exec\n  condition: proc.pid ==\n", 3, "condition: Syntax error"},
		{"macro type error", "- macro: m\n  condition: proc.comm > 1\n- rule: A\n  event: exec\n  condition: m\n", 2, `macro "m" (used by condition at line 5)`},
		{"macro cycle", "- macro: a\n  condition: b\n- macro: b\n  condition: a\n- rule: A\n  event: exec\n  condition: a\n", 7, "refers to itself"},
		{"duplicate rule", "- rule: A\n  event: exec\n  condition: true\n- rule: A\n  event: exec\n  condition: true\n", 4, "already defined at rules.yaml:1"},
		{"bad severity", "- rule: A\n  event: exec\n  condition: true\n  severity: huge\n", 4, "severity \"huge\""},
		{"output placeholder", "- rule: A\n  event: exec\n  condition: true\n  output: 'x %{proc.nope}'\n", 4, `unknown field "proc.nope"`},
		{"yaml", "- rule: A\n  event: [exec\n", 1, "did not find expected"},
		{"not a list", "rule: A\n", 1, "a rule file is a YAML list"},
		{"two kinds", "- rule: A\n  macro: b\n", 1, "more than one of the keys"},
		{"evt field of other kind", "- rule: A\n  event: exit\n  condition: evt.filename == \"x\"\n", 3, `unknown field "evt.filename" (known: evt.core_dumped, evt.exit_code, `},
		{"sequence key count", "- sequence: S\n  window: 5s\n  by: [proc.pid]\n  steps:\n    - {name: a, event: exec}\n    - {name: b, event: exec, by: [proc.pid, proc.uid]}\n", 6, "`by` has 2 keys but the first step has 1"},
		{"sequence one step", "- sequence: S\n  window: 5s\n  by: [proc.pid]\n  steps:\n    - {name: a, event: exec}\n", 5, "at least 2 steps"},
		{"sequence later step ref", "- sequence: S\n  window: 5s\n  by: [proc.pid]\n  steps:\n    - {name: a, event: exec, condition: 'b.proc.pid == 1'}\n    - {name: b, event: exec}\n", 5, `unknown field "b.proc.pid" (no fields start with "b." here)`},
		{"threshold count", "- rule: A\n  event: exec\n  condition: true\n  threshold: {count: 1, window: 5s, by: [proc.pid]}\n", 4, "threshold.count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantDiag(t, compileErr(t, tc.src), tc.line, tc.substr)
		})
	}
}

func TestUnusedMacrosAndListsWarn(t *testing.T) {
	src := `
- list: used_list
  items: [a, b]
- list: spare_list
  items: [c]
- macro: spare_macro
  condition: proc.pid == 1
- macro: used_macro
  condition: proc.comm in used_list
- rule: A
  event: exec
  condition: used_macro
`
	rs, ds := Compile("r.yaml", []byte(src), DefaultOptions())
	if rs == nil {
		t.Fatalf("compile failed: %v", ds)
	}
	w := ds.Warnings()
	if len(w) != 2 {
		t.Fatalf("want 2 warnings, got %v", w)
	}
	wantDiag(t, w, 4, `list "spare_list" is never used`)
	wantDiag(t, w, 6, `macro "spare_macro" is never used`)
}

func TestMacroAndListExpansion(t *testing.T) {
	src := `
- list: names
  items: ["a\"b", 'it''s', x]
- macro: m
  condition: proc.comm in names && "names" != proc.comm
- rule: A
  event: exec
  condition: m || proc.comm == "names"
`
	rs, ds := Compile("r.yaml", []byte(src), DefaultOptions())
	if rs == nil {
		t.Fatalf("compile failed: %v", ds)
	}
	got := rs.Rules[0].condSrc
	want := `(proc.comm in ["a\"b", "it's", "x"] && "names" != proc.comm) || proc.comm == "names"`
	if got != want {
		t.Fatalf("expanded\n got %s\nwant %s", got, want)
	}
}

func TestDefaultPackCompiles(t *testing.T) {
	rs, ds := LoadFiles(defaultPack(t), DefaultOptions())
	if rs == nil {
		t.Fatalf("default pack: %v", ds)
	}
	for _, d := range ds {
		if !strings.Contains(d.Msg, "has no probe in this build") {
			t.Errorf("unexpected diagnostic: %v", d)
		}
	}
	if len(rs.Rules)+len(rs.Sequences) < 7 {
		t.Fatalf("default pack has %d rules and %d sequences", len(rs.Rules), len(rs.Sequences))
	}
}

func TestPushdown(t *testing.T) {
	rs, ds := LoadFiles(defaultPack(t), DefaultOptions())
	if rs == nil {
		t.Fatal(ds)
	}
	pd := rs.Pushdown()
	got := pd["open"].PathPrefixes
	want := []string{"/etc/gshadow", "/etc/master.passwd", "/etc/shadow", "/etc/ssh/ssh_host_", "/etc/sudoers", "/home/", "/root/.ssh/id_"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("open path prefixes\n got %v\nwant %v", got, want)
	}
	if _, ok := pd["exec"]; ok {
		t.Fatalf("exec rules do not all restrict a field, yet pushdown = %+v", pd["exec"])
	}

	src := `
- rule: A
  event: open
  condition: proc.pid == 42 && evt.path.startsWith("/srv/")
- rule: B
  event: open
  condition: (proc.pid == 7 || proc.pid == 8) && evt.path == "/etc/x"
- rule: C
  event: exec
  condition: proc.cgroup_id == 99 || proc.comm == "x"
`
	rs, ds = Compile("p.yaml", []byte(src), DefaultOptions())
	if rs == nil {
		t.Fatal(ds)
	}
	pd = rs.Pushdown()
	f := pd["open"]
	if strings.Join(f.PathPrefixes, ",") != "/etc/x,/srv/" || len(f.PIDs) != 3 || f.PIDs[0] != 7 || f.PIDs[2] != 42 {
		t.Fatalf("open filter = %+v", f)
	}
	if _, ok := pd["exec"]; ok {
		t.Fatalf("an || with an unrestricted side must not push down: %+v", pd["exec"])
	}
}

func TestMacroExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("- macro: m0\n  condition: proc.pid == 1\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "- macro: m%d\n  condition: m%d && m%d\n", i, i-1, i-1)
	}
	b.WriteString("- rule: A\n  event: exec\n  condition: m30\n")
	start := time.Now()
	ds := compileErr(t, b.String())
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	if !strings.Contains(ds.Err().Error(), "expands to more than") {
		t.Fatalf("got %v", ds)
	}
}
