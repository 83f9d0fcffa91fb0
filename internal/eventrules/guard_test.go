package eventrules

import "testing"

func TestGuards(t *testing.T) {
	opts := DefaultOptions()
	rs, ds := Compile("g.yaml", []byte(genRules(10)), opts)
	if rs == nil {
		t.Fatal(ds)
	}
	want := []int{1, 1, 2, 1, 2}
	for i, r := range rs.Rules {
		if len(r.guards) != want[i%5] {
			t.Errorf("rule %d %q: %d guards, want %d", i, r.condSrc, len(r.guards), want[i%5])
		}
	}
}

func BenchmarkExistsVsIn(b *testing.B) {
	for _, cond := range []string{`evt.args.exists(a, a == "--x")`, `"--x" in evt.args`} {
		rs, ds := Compile("g.yaml", []byte("- rule: A\n  event: exec\n  condition: '"+cond+"'\n"), DefaultOptions())
		if rs == nil {
			b.Fatal(ds)
		}
		rs.Rules[0].guards = nil // the CEL cost alone
		e, _ := benchEngine(b, rs)
		ev := benchExec(1000, "/usr/bin/ls")
		b.Run(cond, func(b *testing.B) {
			for b.Loop() {
				e.Handle(ev)
			}
		})
	}
}
