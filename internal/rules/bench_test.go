package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
)

// agentLikeRegistry mimics a busy agent: execs by executable x container,
// exits by outcome, a lifetime histogram per container, Go and process
// collectors. About 100*series/100 + ... series; see the returned count.
func agentLikeRegistry(executables, containers int) (*prometheus.Registry, func(step int)) {
	reg := prometheus.NewRegistry()
	execs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_bench_execs_total", Help: "h"}, []string{"executable", "container"})
	exits := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_bench_exits_total", Help: "h"}, []string{"executable", "outcome"})
	life := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_bench_lifetime_seconds", Help: "h",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}, []string{"container"})
	reg.MustRegister(execs, exits, life, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	advance := func(step int) {
		for e := range executables {
			exe := "exe" + strconv.Itoa(e)
			for c := range containers {
				execs.WithLabelValues(exe, "ctr"+strconv.Itoa(c)).Add(float64(1 + (e+c+step)%7))
			}
			exits.WithLabelValues(exe, "success").Add(float64(3 + step%5))
			exits.WithLabelValues(exe, "failure").Add(float64(step % 2))
		}
		for c := range containers {
			life.WithLabelValues("ctr" + strconv.Itoa(c)).Observe(float64(step%100) / 10)
		}
	}
	return reg, advance
}

// benchRules writes n alerting rules in groups of 100, in one of three
// mixes:
//
//   - selective: per-entity rules, each selecting 3-14 series (thresholds per
//     executable or container, a failure ratio, a p99, 5% z-scores);
//   - aggregating: every rule aggregates over 100-200 series (p99 over all
//     containers, failure ratios by executable, ...);
//   - recorded: the aggregating mix with the aggregations computed once per
//     cycle by recording rules and the alerts thresholding the result, which
//     is how Prometheus users scale many rules over the same aggregate;
//   - storm: the selective mix with every rule active (an alert storm: each
//     active alert's templates are expanded on every evaluation).
//
// Except in the storm, 1% of the rules have alerts (pending or firing).
func benchRules(t testing.TB, dir, mix string, n int) string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for i := range n {
		if i%100 == 0 {
			fmt.Fprintf(&b, "- name: bench%d\n  rules:\n", i/100)
			if mix == "recorded" && i == 0 {
				b.WriteString(`  - record: container:vigil_bench_lifetime_seconds:p99_5m
    expr: histogram_quantile(0.99, sum by (container, le) (rate(vigil_bench_lifetime_seconds_bucket[5m])))
  - record: executable:vigil_bench_exits:failure_ratio_5m
    expr: sum by (executable) (rate(vigil_bench_exits_total{outcome="failure"}[5m])) / sum by (executable) (rate(vigil_bench_exits_total[5m]))
  - record: container:vigil_bench_execs:rate5m
    expr: sum by (container) (rate(vigil_bench_execs_total[5m]))
`)
			}
		}
		exe, ctr := i%100, i%10
		// hot picks the threshold: 1% of the rules (all in the storm mix)
		// use one the data crosses, the rest one it never reaches.
		hot := i%100 == 7 || mix == "storm"
		th := func(low, high string) string {
			if hot {
				return low
			}
			return high
		}
		var expr string
		switch mix {
		case "selective", "storm":
			switch {
			case i%20 == 0:
				expr = fmt.Sprintf(`(sum(rate(vigil_bench_execs_total{executable="exe%d"}[5m])) - avg_over_time(sum(rate(vigil_bench_execs_total{executable="exe%d"}[5m]))[1h:1m])) / clamp_min(stddev_over_time(sum(rate(vigil_bench_execs_total{executable="exe%d"}[5m]))[1h:1m]), 0.1) > 3`, exe, exe, exe)
			case i%5 == 1:
				expr = fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(vigil_bench_lifetime_seconds_bucket{container="ctr%d"}[5m]))) > %s`, ctr, th("0.001", "1e9"))
			case i%5 == 2:
				expr = fmt.Sprintf(`sum(rate(vigil_bench_exits_total{executable="exe%d",outcome="failure"}[5m])) / sum(rate(vigil_bench_exits_total{executable="exe%d"}[5m])) > %s`, exe, exe, th("0.01", "2"))
			default:
				expr = fmt.Sprintf(`sum by (container) (rate(vigil_bench_execs_total{executable="exe%d"}[5m])) > %s`, exe, th("0.01", "1e9"))
			}
		case "aggregating":
			switch {
			case i%5 == 1:
				expr = fmt.Sprintf(`histogram_quantile(0.99, sum by (container, le) (rate(vigil_bench_lifetime_seconds_bucket[5m]))) > %s`, th("0.001", "1e9"))
			case i%5 == 2:
				expr = fmt.Sprintf(`sum by (executable) (rate(vigil_bench_exits_total{outcome="failure"}[5m])) / sum by (executable) (rate(vigil_bench_exits_total[5m])) > %s`, th("0.01", "2"))
			default:
				expr = fmt.Sprintf(`sum by (container) (rate(vigil_bench_execs_total[5m])) > %s`, th("0.01", "1e9"))
			}
		case "recorded":
			switch {
			case i%5 == 1:
				expr = fmt.Sprintf(`container:vigil_bench_lifetime_seconds:p99_5m > %s`, th("0.001", "1e9"))
			case i%5 == 2:
				expr = fmt.Sprintf(`executable:vigil_bench_exits:failure_ratio_5m > %s`, th("0.01", "2"))
			default:
				expr = fmt.Sprintf(`container:vigil_bench_execs:rate5m > %s`, th("0.01", "1e9"))
			}
		}
		fmt.Fprintf(&b, "  - alert: Bench%d\n    expr: '%s'\n    for: 1m\n    annotations:\n      summary: '{{ $labels }} {{ $value }}'\n", i, expr)
	}
	return writeFileTB(t, filepath.Join(dir, "bench.yml"), b.String())
}

func writeFileTB(t testing.TB, path, content string) string {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// feedHistory feeds the registry into the engine's TSDB every 15s of
// simulated time for the given duration, ending now.
func feedHistory(t testing.TB, e *Engine, advance func(int), d time.Duration) time.Time {
	start := time.Now().Add(-d)
	steps := int(d / (15 * time.Second))
	var ts time.Time
	for i := range steps {
		advance(i)
		ts = start.Add(time.Duration(i) * 15 * time.Second)
		if err := e.feed.feed(context.Background(), ts); err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

// BenchmarkEvaluate1000Rules measures one evaluation cycle of 1,000
// alerting rules (all groups, one after the other, as CPU time per cycle)
// over 70 minutes of agent-like data: 100 executables x 10 containers,
// ~1,400 series, fed every 15s.
//
//	go test -run '^$' -bench Evaluate1000Rules -benchtime 20x ./internal/rules/
func BenchmarkEvaluate1000Rules(b *testing.B) {
	for _, c := range []struct {
		name, mix  string
		concurrent bool
	}{
		{"selective", "selective", false},
		{"selective-concurrent", "selective", true},
		{"storm", "storm", false},
		{"aggregating", "aggregating", false},
		{"recorded", "recorded", false},
	} {
		b.Run(c.name, func(b *testing.B) { benchEvaluate(b, c.mix, c.concurrent) })
	}
}

// benchEvaluate evaluates every group once per iteration: one after the
// other (CPU cost of a cycle) or each in its own goroutine, as the rule
// manager runs them (wall-clock length of a cycle).
func benchEvaluate(b *testing.B, mix string, concurrent bool) {
	dir := b.TempDir()
	reg, advance := agentLikeRegistry(100, 10)
	file := benchRules(b, dir, mix, 1000)
	e, err := New(Options{Config: Config{DataDir: dir, Builtin: new(bool)}, Gatherer: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	last := feedHistory(b, e, advance, 70*time.Minute)
	groups, errs := e.Manager().LoadGroups(15*time.Second, labels.EmptyLabels(), "", nil, false, file)
	if errs != nil {
		b.Fatal(errs)
	}
	series := e.DB().Head().NumSeries()
	ordered := make([]*promrules.Group, 0, len(groups))
	for i := range len(groups) {
		ordered = append(ordered, groups[promrules.GroupKey(file, fmt.Sprint("bench", i))])
	}
	ts, step := last, 1000
	// next feeds new samples 15s later, like the agent between cycles; it
	// is not part of the measurement.
	next := func() {
		ts = ts.Add(15 * time.Second)
		step++
		advance(step)
		if err := e.feed.feed(context.Background(), ts); err != nil {
			b.Fatal(err)
		}
	}
	evalAll := func() {
		if !concurrent || mix == "recorded" { // recorded: alerts depend on bench0's records
			for _, g := range ordered {
				g.Eval(context.Background(), ts)
			}
			return
		}
		var wg sync.WaitGroup
		for _, g := range ordered {
			wg.Add(1)
			go func() { defer wg.Done(); g.Eval(context.Background(), ts) }()
		}
		wg.Wait()
	}
	next()
	evalAll() // warm up
	for _, g := range ordered {
		for _, r := range g.Rules() {
			if r.LastError() != nil {
				b.Fatalf("%s: %v", r.Name(), r.LastError())
			}
		}
	}
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		next()
		b.StartTimer()
		c0 := cpuTime()
		evalAll()
		cpu += cpuTime() - c0
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/cycle")
	// CPU time (all threads, GC included) is what the agent pays per cycle
	// and is less disturbed than wall time by other load on the machine.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/cycle")
	b.ReportMetric(float64(series), "series")
	firing := 0
	for _, g := range ordered {
		for _, r := range g.Rules() {
			if ar, ok := r.(*promrules.AlertingRule); ok {
				firing += len(ar.ActiveAlerts())
			}
		}
	}
	b.ReportMetric(float64(firing), "active-alerts")
}

// BenchmarkEngineRSS reports the resident memory the engine and its TSDB
// add at default settings once the head holds two hours of data (the most it
// holds before compacting to a block), with the shipped rules loaded.
//
//	go test -run '^$' -bench EngineRSS -benchtime 1x ./internal/rules/
func BenchmarkEngineRSS(b *testing.B) {
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		reg, advance := agentLikeRegistry(100, 10)
		files, _ := filepath.Glob("../../deploy/rules/metrics/*.yml")
		runtime.GC()
		debug.FreeOSMemory()
		before := rssBytes(b)
		e, err := New(Options{Config: Config{DataDir: dir, Files: files}, Gatherer: reg})
		if err != nil {
			b.Fatal(err)
		}
		last := feedHistory(b, e, advance, 2*time.Hour)
		for _, g := range e.Manager().RuleGroups() {
			g.Eval(context.Background(), last)
		}
		runtime.GC()
		debug.FreeOSMemory()
		after := rssBytes(b)
		b.ReportMetric(float64(after-before)/(1<<20), "MiB-rss-added")
		b.ReportMetric(float64(e.DB().Head().NumSeries()), "series")
		b.ReportMetric(float64(dirSize(dir))/(1<<20), "MiB-on-disk")
		e.Close()
	}
}

// cpuTime is the process's user+system CPU time so far (all threads,
// including the garbage collector's).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssBytes(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("VmRSS not found")
	return 0
}
