package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/proc"
)

func TestTopRows(t *testing.T) {
	prev := map[statID]statVal{
		{nr: 0, comm: "nginx"}:  {count: 100, errors: 1, totalNS: 1000},
		{nr: 1, comm: "nginx"}:  {count: 50, totalNS: 500},
		{nr: 35, comm: "sleep"}: {count: 1, totalNS: 20e6},
	}
	cur := map[statID]statVal{
		{nr: 0, comm: "nginx"}:                     {count: 150, errors: 3, totalNS: 2000}, // +50 read, 2 errors
		{nr: 1, comm: "nginx"}:                     {count: 50, totalNS: 500},              // idle
		{nr: 1, comm: "redis"}:                     {count: 70, totalNS: 700},              // new: +70 write
		{nr: 35, comm: "sleep"}:                    {count: 3, totalNS: 60e6},              // +2 nanosleep, 40 ms
		{nr: 39, comm: "x", overflow: true}:        {count: 5, totalNS: 5},
		{nr: 39, comm: "", cgroup: 0}:              {count: 0},
		{nr: 0, comm: "redis", cgroup: 1 << 40}:    {count: 10, totalNS: 10},
		{nr: 100000, comm: "odd", cgroup: 1 << 40}: {count: 1, totalNS: 1},
	}
	bySyscall := topRows(cur, prev, "syscall", "count", 10, nil)
	want := []topRow{
		{Name: "write", Count: 70, TotalSeconds: 700e-9},
		{Name: "read", Count: 60, Errors: 2, TotalSeconds: 1010e-9},
		{Name: "getpid", Count: 5, TotalSeconds: 5e-9},
		{Name: "nanosleep", Count: 2, TotalSeconds: 40e-3},
		{Name: "syscall_100000", Count: 1, TotalSeconds: 1e-9},
	}
	if len(bySyscall) != len(want) {
		t.Fatalf("rows %+v", bySyscall)
	}
	for i, w := range want {
		g := bySyscall[i]
		if g.Name != w.Name || g.Count != w.Count || g.Errors != w.Errors || !near(g.TotalSeconds, w.TotalSeconds) {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
	byTime := topRows(cur, prev, "syscall", "time", 1, nil)
	if len(byTime) != 1 || byTime[0].Name != "nanosleep" || !near(byTime[0].AvgSeconds, 20e-3) {
		t.Errorf("by time: %+v", byTime)
	}
	byProc := topRows(cur, prev, "process", "count", 10, nil)
	if byProc[0].Name != "redis" || byProc[0].Count != 80 || byProc[0].TopSyscall != "write" {
		t.Errorf("by process: %+v", byProc)
	}
	var other bool
	for _, r := range byProc {
		other = other || (r.Name == "other" && r.Count == 5)
	}
	if !other {
		t.Errorf("overflowed stats not shown as other: %+v", byProc)
	}
	byCtr := topRows(cur, prev, "container", "count", 10, proc.NewCgroups(t.TempDir(), 1))
	if byCtr[0].Name != "host" || byCtr[0].Count != 50+70+2+10+1 {
		t.Errorf("by container: %+v", byCtr)
	}
	var buf bytes.Buffer
	printTopTable(&buf, topView{By: "process", Sort: "count", IntervalSeconds: 1, Rows: byProc})
	if !strings.Contains(buf.String(), "TOP_SYSCALL") || !strings.Contains(buf.String(), "redis") {
		t.Errorf("table:\n%s", buf.String())
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }
