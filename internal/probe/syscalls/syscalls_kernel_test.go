package syscalls

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/kernel"
)

// A thread doing N known syscalls shows exactly N in the kernel aggregates
// for its comm and cgroup; a 20 ms clock_nanosleep lands in the (16.8, 33.6] ms
// bucket; the metrics say the same.
// It runs once per hook tier: task storage on tp_btf, then the hash map on
// raw_tp and on the classic tracepoint, as on kernels without the former.
func TestKernelSyscallCounts(t *testing.T) {
	needBPF(t)
	for _, tc := range []struct {
		name     string
		disabled []kernel.HookKind
		want     kernel.HookKind
	}{
		{"tp_btf", nil, kernel.TpBTF},
		{"raw_tp", []kernel.HookKind{kernel.TpBTF}, kernel.RawTP},
		{"tracepoint", []kernel.HookKind{kernel.TpBTF, kernel.RawTP}, kernel.Tracepoint},
	} {
		t.Run(tc.name, func(t *testing.T) { testSyscallCounts(t, tc.disabled, tc.want) })
	}
}

func testSyscallCounts(t *testing.T, disabled []kernel.HookKind, wantHook kernel.HookKind) {
	c := startChild(t)
	cgDir, cgID := newCgroup(t)
	moveTo(t, cgDir, c.cmd.Process.Pid)
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(c.cmd.Process.Pid)}
	reg := prometheus.NewRegistry()
	p := startProbe(t, cfg, reg, disabled...)
	for _, prog := range p.Object().Programs {
		if prog.Hook != wantHook {
			t.Fatalf("%s attached through %s, want %s", prog.Name, prog.Hook, wantHook)
		}
	}
	c.run(t)

	stats, errs, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.CgroupID != cgID {
			t.Errorf("pid filter let through %s from comm %q cgroup %d", s.Syscall(), s.Comm, s.CgroupID)
		}
	}
	got := byName(stats, c.comm, cgID)
	want := map[string][2]uint64{ // count, errors
		"getppid":         {nGetppid, 0},
		"fchmod":          {nFchmodBad, nFchmodBad},
		"getcwd":          {nGetcwd, 0},
		"clock_nanosleep": {nSleeps, 0},
	}
	for name, w := range want {
		s := got[name]
		if s == nil {
			t.Errorf("%s: no aggregate for comm %s", name, c.comm)
			continue
		}
		if s.Count != w[0] || s.Errors != w[1] {
			t.Errorf("%s: count %d errors %d, want %d and %d", name, s.Count, s.Errors, w[0], w[1])
		}
		var hsum uint64
		for _, n := range s.Hist {
			hsum += n
		}
		if hsum != s.Count {
			t.Errorf("%s: histogram holds %d, count is %d", name, hsum, s.Count)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			// prctl (the rename itself), futex and rt_sigreturn (Go's
			// preemption signals) are the runtime's, and real.
			t.Logf("also on the workload thread: %s %d", name, got[name].Count)
		}
	}
	// 20 ms = 2^24.25 ns: bucket 15, (2^24, 2^25] ns. On a busy machine a
	// sleep can overrun into the next bucket; the child's own timing of
	// each sleep (which encloses the kernel's) says where each may land.
	if ns := got["clock_nanosleep"]; ns != nil {
		// Each kernel span k satisfies 20 ms <= k <= d, the child's span.
		maxB := 15
		for _, d := range c.slept {
			maxB = max(maxB, bucketOf(d))
		}
		for b, n := range ns.Hist {
			if n > 0 && (b < 15 || b > maxB) {
				t.Errorf("clock_nanosleep(20ms): %d in bucket %d (under %.4f s), want buckets 15..%d; the child measured %v", n, b, BucketUpperBound(b), maxB, c.slept)
			}
		}
		if want := wantInBucket15(c.slept); ns.Hist[15] < uint64(want) {
			t.Errorf("clock_nanosleep(20ms) histogram %v: want at least %d in bucket 15 (%.4f s .. %.4f s]; the child measured %v", ns.Hist, want, BucketUpperBound(14), BucketUpperBound(15), c.slept)
		}
		var childTotal time.Duration
		for _, d := range c.slept {
			childTotal += d
		}
		if ns.TotalNS < uint64(nSleeps*sleepFor) || ns.TotalNS > uint64(childTotal) {
			t.Errorf("clock_nanosleep total %d ns, want between %d and the child's own %d", ns.TotalNS, nSleeps*sleepFor, childTotal)
		}
	}
	var ebadf uint64
	for _, e := range errs {
		if e.Nr == unix.SYS_FCHMOD && e.Errno == uint32(unix.EBADF) {
			ebadf += e.Count
		}
	}
	if ebadf != nFchmodBad {
		t.Errorf("errno map: fchmod EBADF %d, want %d", ebadf, nFchmodBad)
	}

	// The same through /metrics.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := func(m *dto.Metric) map[string]string {
		out := map[string]string{}
		for _, l := range m.GetLabel() {
			out[l.GetName()] = l.GetValue()
		}
		return out
	}
	var calls, fails float64
	var hist *dto.Histogram
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			switch mf.GetName() {
			case "vigil_syscalls_total":
				if l["syscall"] == "getppid" && l["process"] == c.comm {
					calls += m.GetCounter().GetValue()
				}
			case "vigil_syscall_errors_total":
				if l["syscall"] == "fchmod" && l["errno"] == "EBADF" {
					fails += m.GetCounter().GetValue()
				}
			case "vigil_syscall_duration_seconds":
				if l["syscall"] == "clock_nanosleep" {
					hist = m.GetHistogram()
				}
			}
		}
	}
	if calls != nGetppid || fails != nFchmodBad {
		t.Errorf("metrics: getppid %v fchmod EBADF %v, want %d and %d", calls, fails, nGetppid, nFchmodBad)
	}
	if hist == nil {
		t.Fatal("no vigil_syscall_duration_seconds{syscall=\"clock_nanosleep\"}")
	}
	// Other processes' clock_nanosleeps share the series (no pid label).
	var below, at float64
	for _, b := range hist.GetBucket() {
		if math.Abs(b.GetUpperBound()-BucketUpperBound(14)) < 1e-12 {
			below = float64(b.GetCumulativeCount())
		}
		if math.Abs(b.GetUpperBound()-BucketUpperBound(15)) < 1e-12 {
			at = float64(b.GetCumulativeCount())
		}
	}
	if at-below < float64(wantInBucket15(c.slept)) {
		t.Errorf("metrics: %v observations in (%.4f, %.4f] s, want at least %d", at-below, BucketUpperBound(14), BucketUpperBound(15), wantInBucket15(c.slept))
	}
}

// bucketOf is the kernel histogram bucket of a duration: the smallest i with
// d < 2^(i+10) ns.
func bucketOf(d time.Duration) int {
	for i := 0; i < HistBuckets-1; i++ {
		if float64(d.Nanoseconds()) < BucketUpperBound(i)*1e9 {
			return i
		}
	}
	return HistBuckets - 1
}

// wantInBucket15 counts the sleeps that certainly landed in bucket 15.
func wantInBucket15(slept []time.Duration) int {
	n := 0
	for _, d := range slept {
		if bucketOf(d) == 15 {
			n++
		}
	}
	return n
}
