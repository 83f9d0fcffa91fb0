package l7

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// The discovery hands every process out once at start, a new one on each
// of its first youngScans scans, never the agent itself, and forgets pids
// that are gone.
func TestDiscoverer(t *testing.T) {
	proc := t.TempDir()
	mk := func(pids ...int) {
		for _, p := range pids {
			if err := os.Mkdir(filepath.Join(proc, strconv.Itoa(p)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk(1, 20, 300, 99)
	for _, n := range []string{"self", "net", "sys"} {
		if err := os.Mkdir(filepath.Join(proc, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := newDiscoverer(proc, 0, 99)
	var got []int
	d.OnProcess(func(pid int) { got = append(got, pid) })
	scan := func(initial bool) []int {
		got = nil
		d.scan(initial)
		slices.Sort(got)
		return got
	}
	if g := scan(true); !slices.Equal(g, []int{1, 20, 300}) {
		t.Errorf("start: %v", g)
	}
	if g := scan(false); len(g) != 0 {
		t.Errorf("nothing new: %v", g)
	}
	mk(4000)
	for i := 0; i < youngScans; i++ {
		if g := scan(false); !slices.Equal(g, []int{4000}) {
			t.Errorf("young scan %d: %v", i, g)
		}
	}
	if g := scan(false); len(g) != 0 {
		t.Errorf("settled: %v", g)
	}
	if err := os.Remove(filepath.Join(proc, "20")); err != nil {
		t.Fatal(err)
	}
	scan(false)
	if _, ok := d.seen[20]; ok || len(d.seen) != 3 {
		t.Errorf("seen after pid 20 left: %v", d.seen)
	}
	// A pid number reused after it was forgotten is a new process.
	mk(20)
	if g := scan(false); !slices.Equal(g, []int{20}) {
		t.Errorf("reused pid: %v", g)
	}
}

// A periodic scan hands out at most maxPerScan processes, new ones before
// young ones; those left over come on the next scans.
func TestDiscovererBound(t *testing.T) {
	proc := t.TempDir()
	mk := func(from, n int) {
		for p := from; p < from+n; p++ {
			if err := os.Mkdir(filepath.Join(proc, strconv.Itoa(p)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := newDiscoverer(proc, 0, 0)
	seen := map[int]int{}
	var last int
	d.OnProcess(func(pid int) { seen[pid]++; last++ })
	d.scan(true)
	mk(10000, maxPerScan+10)
	scan := func() int { last = 0; d.scan(false); return last }
	if n := scan(); n != maxPerScan {
		t.Fatalf("first scan handed out %d, want %d", n, maxPerScan)
	}
	// The 10 left over are new: they come before the young rescans,
	// which would fill the scan on their own.
	if n := scan(); n != maxPerScan {
		t.Fatalf("second scan handed out %d", n)
	}
	for p := 10000; p < 10000+maxPerScan+10; p++ {
		if seen[p] == 0 {
			t.Errorf("pid %d never handed out", p)
		}
	}
	for i := 0; i < 4; i++ {
		scan()
	}
	for p, n := range seen {
		if n != youngScans {
			t.Errorf("pid %d handed out %d times, want %d", p, n, youngScans)
		}
	}
}

// With a filter, processes it does not want are never handed out.
func TestDiscovererWant(t *testing.T) {
	proc := t.TempDir()
	for _, p := range []int{5, 6, 7} {
		if err := os.Mkdir(filepath.Join(proc, strconv.Itoa(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := newDiscoverer(proc, 0, 0)
	d.want = func(pid int) bool { return pid != 6 }
	var got []int
	d.OnProcess(func(pid int) { got = append(got, pid) })
	d.scan(true)
	slices.Sort(got)
	if !slices.Equal(got, []int{5, 7}) {
		t.Errorf("handed out %v", got)
	}
}
