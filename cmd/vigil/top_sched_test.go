package main

import (
	"math"
	"testing"

	"github.com/vigilproject/vigil/internal/probe/sched"
)

// Rows are interval deltas grouped by name; a key whose name changed (a
// reused tid) counts from zero; idle groups are left out.
func TestSchedRows(t *testing.T) {
	st := func(slot int, waits uint64, lockMS uint64) sched.Stats {
		var s sched.Stats
		s.RunqHist[slot] = waits
		s.RunqCount = waits
		s.OffCPUNS[sched.Lock] = lockMS * 1e6
		return s
	}
	prev := map[uint64]schedEntry{
		1: {"nginx", st(3, 10, 5)},
		2: {"nginx", st(3, 10, 0)},
		3: {"old", st(10, 4, 0)},
		4: {"idle", st(1, 7, 0)},
	}
	cur := map[uint64]schedEntry{
		1: {"nginx", st(3, 30, 25)}, // +20 waits, +20 ms lock
		2: {"nginx", st(3, 20, 0)},  // +10 waits
		3: {"postgres", st(10, 2, 100)},
		4: {"idle", st(1, 7, 0)},
	}
	rows := schedRows(cur, prev, "lock", 10)
	if len(rows) != 2 || rows[0].Name != "postgres" || rows[1].Name != "nginx" {
		t.Fatalf("rows %+v", rows)
	}
	n := rows[1]
	if n.Waits != 30 || math.Abs(n.OffCPUSeconds["lock"]-0.020) > 1e-9 || n.P50Seconds < 8e-6 || n.P99Seconds > 16e-6 {
		t.Errorf("nginx %+v", n)
	}
	if p := rows[0]; p.Waits != 2 || math.Abs(p.OffCPUSeconds["lock"]-0.1) > 1e-9 {
		t.Errorf("postgres (tid reused) %+v", p)
	}
	if rows := schedRows(cur, prev, "p99", 1); len(rows) != 1 || rows[0].Name != "postgres" {
		t.Errorf("top 1 by p99: %+v", rows)
	}
}
