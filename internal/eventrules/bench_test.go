package eventrules

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/proc"
)

// benchProcs is a process cache with a realistic ancestry: pid 1 (systemd)
// -> sshd -> bash -> the processes of the benchmark events.
func benchProcs() *proc.Cache {
	c := proc.NewCache(65536, nil)
	c.Exec(proc.Process{PID: 1, PPID: 0, StartNS: 1, Comm: "systemd", Exe: "/usr/lib/systemd/systemd"})
	c.Exec(proc.Process{PID: 500, PPID: 1, StartNS: 2, Comm: "sshd", Exe: "/usr/sbin/sshd"})
	c.Exec(proc.Process{PID: 600, PPID: 500, StartNS: 3, Comm: "bash", Exe: "/usr/bin/bash", Args: []string{"-bash"}})
	for pid := uint32(1000); pid < 1100; pid++ {
		c.Exec(proc.Process{PID: pid, PPID: 600, StartNS: 4, Comm: "ls", Exe: "/usr/bin/ls", Args: []string{"ls", "-l"}})
	}
	return c
}

func benchExec(pid uint32, file string) *event.Exec {
	return &event.Exec{Header: event.Header{Kind: event.KindExec, Time: time.Now(), Process: event.Process{
		PID: pid, PPID: 600, Comm: "ls", Exe: file, StartNS: 4}}, Filename: file, Args: []string{file, "-l", "/srv"}}
}

type nopSink struct{ n int }

func (s *nopSink) Send(_ string, as []alert.Alert) { s.n += len(as) }

func benchEngine(b *testing.B, rs *Ruleset) (*Engine, *nopSink) {
	sink := &nopSink{}
	e := NewEngine(benchProcs(), sink)
	e.Install(rs)
	return e, sink
}

func loadPack(b *testing.B) *Ruleset {
	opts := DefaultOptions()
	opts.ReorderWindow = 0
	rs, ds := LoadFiles(defaultPack(b), opts)
	if rs == nil {
		b.Fatal(ds)
	}
	return rs
}

// paths runs a benchmark with the rule index (as the agent runs) and with
// the linear scan of every rule of the event's kind, in one run.
func paths(b *testing.B, bench func(b *testing.B, linear bool)) {
	b.Run("index", func(b *testing.B) { bench(b, false) })
	b.Run("linear", func(b *testing.B) { bench(b, true) })
}

// BenchmarkDefaultPackExec is the cost of one exec event (matching no rule)
// through every exec rule of the default pack.
func BenchmarkDefaultPackExec(b *testing.B) {
	paths(b, func(b *testing.B, linear bool) {
		rs := loadPack(b)
		e, _ := benchEngine(b, rs)
		e.linear = linear
		ev := benchExec(1000, "/usr/bin/ls")
		b.ReportAllocs()
		for b.Loop() {
			e.Handle(ev)
		}
		b.ReportMetric(float64(len(rs.byKind[event.KindExec])), "rules")
	})
}

// BenchmarkDefaultPackOpen is one open event (not sensitive) through the
// default pack: the single open rule plus the first step of the sequence.
func BenchmarkDefaultPackOpen(b *testing.B) {
	paths(b, func(b *testing.B, linear bool) {
		rs := loadPack(b)
		e, _ := benchEngine(b, rs)
		e.linear = linear
		ev := openEv(1000, 0, "/usr/lib/x86_64-linux-gnu/libc.so.6")
		ev.Time = time.Now()
		b.ReportAllocs()
		for b.Loop() {
			e.Handle(ev)
		}
	})
}

// gen200 writes n exec rules of the kinds people write: name and path
// tests, list membership, parent and argument checks.
func genRules(n int) string {
	var sb strings.Builder
	sb.WriteString("- list: bench_names\n  items: [curl, wget, nc, ncat, socat, python3, perl, ruby, php, lua]\n")
	for i := range n {
		var cond string
		switch i % 5 {
		case 0:
			cond = fmt.Sprintf(`proc.name == "tool%d" && evt.ret == 0`, i)
		case 1:
			cond = fmt.Sprintf(`evt.filename.startsWith("/opt/app%d/") && proc.uid != 0`, i)
		case 2:
			cond = fmt.Sprintf(`proc.name in bench_names && parent.name == "svc%d"`, i)
		case 3:
			cond = fmt.Sprintf(`"--flag%d" in evt.args && proc.uid == 0`, i)
		case 4:
			cond = fmt.Sprintf(`container.present && proc.exe.endsWith("/bin%d")`, i)
		}
		fmt.Fprintf(&sb, "- rule: R%d\n  event: exec\n  condition: '%s'\n  output: '%%{proc.name} %%{evt.filename}'\n", i, cond)
	}
	return sb.String()
}

// Benchmark200Rules is one exec event through 200 exec rules.
func Benchmark200Rules(b *testing.B) {
	paths(b, func(b *testing.B, linear bool) {
		opts := DefaultOptions()
		opts.ReorderWindow = 0
		rs, ds := Compile("bench.yaml", []byte(genRules(200)), opts)
		if rs == nil {
			b.Fatal(ds)
		}
		e, sink := benchEngine(b, rs)
		e.linear = linear
		ev := benchExec(1000, "/usr/bin/ls")
		b.ReportAllocs()
		for b.Loop() {
			e.Handle(ev)
		}
		if sink.n != 0 {
			b.Fatalf("%d alerts from an event matching no rule", sink.n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200, "ns/rule")
	})
}

// Benchmark200RulesMatching is one exec event through the same 200 rules
// that passes the filed guard of 42 of them (its name is in 40 rules'
// list, its path under one rule's prefix, one of its arguments in another
// rule's test) and matches one (R1; its repeats are suppressed): the
// candidates' other guards and conditions run.
func Benchmark200RulesMatching(b *testing.B) {
	paths(b, func(b *testing.B, linear bool) {
		opts := DefaultOptions()
		opts.ReorderWindow = 0
		rs, ds := Compile("bench.yaml", []byte(genRules(200)), opts)
		if rs == nil {
			b.Fatal(ds)
		}
		e, sink := benchEngine(b, rs)
		e.linear = linear
		ev := benchExec(1000, "/opt/app1/curl")
		ev.Comm, ev.UID = "curl", 1000
		ev.Args = []string{"curl", "--flag3", "-o", "/tmp/x"}
		b.ReportAllocs()
		for b.Loop() {
			e.Handle(ev)
		}
		if sink.n != 1 {
			b.Fatalf("%d alerts, want 1 (R1, then suppressed repeats)", sink.n)
		}
	})
}

// BenchmarkSequenceState100k holds 100k partial sequences (one per
// process) and reports the heap they take.
func BenchmarkSequenceState100k(b *testing.B) {
	const keys = 100_000
	for b.Loop() {
		opts := DefaultOptions()
		opts.ReorderWindow = 0
		opts.MaxKeysPerRule, opts.MaxKeysTotal = keys, keys
		rs, ds := LoadFiles(defaultPack(b), opts)
		if rs == nil {
			b.Fatal(ds)
		}
		e := NewEngine(nil, &nopSink{})
		e.Install(rs)
		now := time.Now()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		// The events are created here and kept only by the states, as in
		// the agent: the figure includes the retained first-step events.
		for i := range keys {
			ev := openEv(uint32(10000+i), 0, "/etc/shadow")
			ev.Time = now
			ev.Comm, ev.Exe = "cat", "/usr/bin/cat"
			e.sequenceEvent(ev)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n := e.seqTotal.Load(); n != keys {
			b.Fatalf("%d states, want %d", n, keys)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "heap-bytes/key")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		runtime.KeepAlive(e)
	}
}

// BenchmarkThroughput feeds a mix of events (execs, exits, opens,
// connects; 1 in 100 matching a rule) through a channel into Engine.Run, as
// the agent's bus subscription does, and reports the events per second the
// engine drains.
func BenchmarkThroughput(b *testing.B) {
	rs := loadPack(b)
	rs.Opts.ReorderWindow = 50 * time.Millisecond
	e, _ := benchEngine(b, rs)
	mix := make([]event.Event, 0, 100)
	now := time.Now()
	for i := range 100 {
		pid := uint32(1000 + i%100)
		var ev event.Event
		switch i % 4 {
		case 0:
			file := "/usr/bin/ls"
			if i == 0 {
				file = "/tmp/x"
			}
			ev = benchExec(pid, file)
		case 1:
			ev = &event.Exit{Header: event.Header{Kind: event.KindExit, Process: event.Process{PID: pid, StartNS: 4}}}
		case 2:
			ev = openEv(pid, 0, "/usr/share/zoneinfo/UTC")
		case 3:
			ev = connectEv(pid, 0, "10.0.0.1", false)
		}
		ev.EventHeader().Time = now
		mix = append(mix, ev)
	}
	ch := make(chan event.Event, b.N)
	for i := range b.N {
		ch <- mix[i%len(mix)]
	}
	close(ch)
	b.ResetTimer()
	start := time.Now()
	_ = e.Run(context.Background(), ch)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
