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
