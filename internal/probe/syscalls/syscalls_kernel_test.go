package syscalls

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// A thread doing N known syscalls shows exactly N in the kernel aggregates
// for its comm and cgroup; a 20 ms clock_nanosleep lands in the (16.8, 33.6] ms
// bucket; the metrics say the same.
func TestKernelSyscallCounts(t *testing.T) {
	needBPF(t)
	c := startChild(t)
	cgDir, cgID := newCgroup(t)
	moveTo(t, cgDir, c.cmd.Process.Pid)
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(c.cmd.Process.Pid)}
	reg := prometheus.NewRegistry()
	p := startProbe(t, cfg, reg)
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
		"getppid":   {nGetppid, 0},
		"fchmod":    {nFchmodBad, nFchmodBad},
		"getcwd":    {nGetcwd, 0},
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
	// 20 ms = 2^24.25 ns: bucket 15, (2^24, 2^25] ns.
	if ns := got["clock_nanosleep"]; ns != nil {
		if ns.Hist[15] != nSleeps {
			t.Errorf("clock_nanosleep(20ms) histogram %v: want all %d in bucket 15 (%.4f s .. %.4f s]", ns.Hist, nSleeps, BucketUpperBound(14), BucketUpperBound(15))
		}
		if avg := float64(ns.TotalNS) / float64(ns.Count); avg < 20e6 || avg > 33e6 {
			t.Errorf("clock_nanosleep average %.0f ns, want 20..33 ms", avg)
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
	if at-below < nSleeps {
		t.Errorf("metrics: %v observations in (%.4f, %.4f] s, want at least %d", at-below, BucketUpperBound(14), BucketUpperBound(15), nSleeps)
	}
}
