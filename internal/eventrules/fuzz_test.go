package eventrules

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
)

// FuzzLoad feeds malformed rule files to the loader and compiler: they must
// return diagnostics, never panic, and a ruleset that compiles must
// evaluate events without panicking.
func FuzzLoad(f *testing.F) {
	// One default-pack file as a seed (the largest ones make each
	// instrumented execution slow).
	b, err := os.ReadFile(defaultPack(f)[len(defaultPack(f))-1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	seeds := []string{
		"- rule: A\n  event: exec\n  condition: proc.pid == 1\n",
		"- macro: m\n  condition: m\n- rule: A\n  event: exec\n  condition: m\n",
		"- list: l\n  items: [1, \"a\"]\n",
		"- sequence: S\n  window: 1s\n  by: [proc.pid]\n  steps: [{name: a, event: exec}, {name: b, event: exit, condition: 'a.evt.filename == \"x\"'}]\n  output: '%{a.evt.args} %{'\n",
		"- rule: A\n  event: exec\n  condition: '\"\\u00\" + '\n",
		"[[[",
		"- rule: A\n  event: exec\n  condition: evt.args.all(a, a.matches('('))\n",
		"- rule: A\n  event: exec\n  condition: true\n  threshold: {count: 3, window: 1s, by: [proc.pid]}\n",
		"- rule: A\n  event: exec\n  condition: |\n    proc.name in l &&\n    x\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		rs, ds := Compile("fuzz.yaml", data, DefaultOptions())
		for _, d := range ds {
			if d.File != "fuzz.yaml" {
				t.Fatalf("diagnostic without the file name: %v", d)
			}
			_ = d.String()
		}
		if rs == nil {
			if ds.Err() == nil {
				t.Fatal("no ruleset and no error")
			}
			return
		}
		_ = rs.Pushdown()
		_ = rs.Summary()
		e := NewEngine(nil, &nopSink{})
		e.Install(rs)
		now := time.Now()
		e.now = func() time.Time { return now }
		for _, ev := range []event.Event{
			&event.Exec{Header: event.Header{Kind: event.KindExec, Time: now, Process: event.Process{PID: 7, Comm: "sh"}}, Filename: "/tmp/x", Args: []string{"x", "y"}},
			&event.Exit{Header: event.Header{Kind: event.KindExit, Time: now, Process: event.Process{PID: 7}}},
			&event.Fork{Header: event.Header{Kind: event.KindFork, Time: now}},
		} {
			e.Handle(ev)
		}
		e.Tick()
		e.Flush()
	})
}

// FuzzCompileExpr fuzzes CEL conditions and output templates on their own.
func FuzzCompileExpr(f *testing.F) {
	for _, s := range []string{`proc.name == "x"`, `evt.args.exists(a, a.startsWith("-"))`, `is_loopback(proc.comm)`,
		`in_cidr("10.0.0.1", "10.0.0.0/8")`, `(((`, `"\x"`, `proc.pid / 0 == 1`, `[1,2][5] == 1`, `{"a": 1}["b"] == 1`,
		`proc.ancestors.name.size() > 2`, `dyn(proc.pid) == "x"`} {
		f.Add(s, "out %{proc.name} %{evt.filename}")
	}
	f.Fuzz(func(t *testing.T, cond, output string) {
		if len(cond)+len(output) > 8<<10 {
			return
		}
		q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
		if strings.ContainsAny(cond+output, "\n\r\x00") {
			return
		}
		src := "- rule: A\n  event: exec\n  condition: " + q(cond) + "\n  output: " + q(output) + "\n"
		rs, ds := Compile("expr.yaml", []byte(src), DefaultOptions())
		if rs == nil {
			if ds.Err() == nil {
				t.Fatal("no ruleset and no error")
			}
			return
		}
		e := NewEngine(nil, &nopSink{})
		e.Install(rs)
		e.Handle(&event.Exec{Header: event.Header{Kind: event.KindExec, Time: time.Now(), Process: event.Process{PID: 9, Comm: "x"}}, Filename: "/bin/x", Args: []string{"a"}})
	})
}
