package sched

import (
	"math"
	"testing"

	"github.com/vigilproject/vigil/internal/config"
)

func TestConfigErrors(t *testing.T) {
	_, err := config.Parse([]byte("probes:\n  sched:\n    max_threads: 4\n"), "mine.yaml")
	if err == nil || err.Error() != "mine.yaml: line 3: probes.sched.max_threads: 4 must be between 16 and 4194304" {
		t.Errorf("error %v", err)
	}
}

func TestQuantileAndSub(t *testing.T) {
	var s Stats
	s.RunqHist[2] = 50 // [4, 8) µs
	s.RunqHist[3] = 50 // [8, 16) µs
	if q := s.Quantile(0.5); math.Abs(q-8e-6) > 1e-12 {
		t.Errorf("p50 %v, want 8µs", q)
	}
	if q := s.Quantile(0.99); math.Abs(q-15.84e-6) > 1e-12 {
		t.Errorf("p99 %v, want 15.84µs", q)
	}
	if !math.IsNaN((&Stats{}).Quantile(0.5)) {
		t.Error("empty histogram has a quantile")
	}
	prev := s
	s.RunqHist[3] += 10
	s.RunqCount, s.OffCPUNS[Lock] = 10, 5
	d := s.Sub(prev)
	if d.RunqHist[3] != 10 || d.RunqHist[2] != 0 || d.RunqCount != 10 || d.OffCPUNS[Lock] != 5 {
		t.Errorf("delta %+v", d)
	}
	// A reused tid restarts from zero: the delta is the new total.
	if d := prev.Sub(s); d.RunqCount != prev.RunqCount || d.RunqHist[3] != 50 {
		t.Errorf("restart delta %+v", d)
	}
}
