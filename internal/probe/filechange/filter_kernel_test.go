package filechange

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/testutil"
)

func countOf(t *testing.T, p *Probe, op string, watched, failed bool) uint64 {
	t.Helper()
	cs, err := p.Counts()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Op == op && c.Watched == watched && c.Failed == failed {
			return c.Count
		}
	}
	return 0
}

// A change outside the watched trees crosses to user space as no event but
// is counted; a change inside does.
func TestKernelFilterCountsUnwatched(t *testing.T) {
	testutil.RequireBPF(t)
	watched, other := realTempDir(t), realTempDir(t)
	mustWrite(t, filepath.Join(watched, "w"))
	mustWrite(t, filepath.Join(other, "taken"))
	const failing = 7
	calls := []childCall{{Name: "watched", NR: unix.SYS_UNLINK, Str: map[int]string{0: watched + "/w"}}}
	for i := range failing {
		// A failed symlink over an existing name: rare enough on a test
		// machine that the system-wide count moves by exactly these.
		calls = append(calls, childCall{Name: fmt.Sprint("other", i), NR: unix.SYS_SYMLINKAT,
			Args: [6]int64{0, unix.AT_FDCWD}, Str: map[int]string{0: "target", 2: other + "/taken"}})
	}
	cfg := DefaultConfig()
	cfg.WatchPaths = []string{watched + "/"}
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1024, KindFileChange)
	c := startChild(t, calls)
	p, reg := startProbe(t, cfg, bus)
	before := countOf(t, p, OpSymlink, false, true)
	res := c.run(t)
	for i := range failing {
		if r := res[fmt.Sprint("other", i)]; r.Ret != -int64(unix.EEXIST) {
			t.Fatalf("child symlinkat: %d, want -EEXIST", r.Ret)
		}
	}
	got := collect(sub, c.cmd.Process.Pid, 3*time.Second, func(evs []*FileChange) bool { return len(evs) >= 1 })
	got = append(got, collect(sub, c.cmd.Process.Pid, 500*time.Millisecond, func([]*FileChange) bool { return false })...)
	if len(got) != 1 || got[0].Path != watched+"/w" || got[0].Op != OpUnlink {
		for _, e := range got {
			t.Logf("event: %s %s", e.Op, e.Path)
		}
		t.Fatalf("%d events, want only the unlink of %s/w", len(got), watched)
	}
	if n := countOf(t, p, OpSymlink, false, true) - before; n != failing {
		t.Errorf("unwatched failed symlinks counted %d, want %d", n, failing)
	}
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Value("vigil_file_changes_total", map[string]string{"op": "symlink", "watched": "false", "result": "error"}); v < failing {
		t.Errorf("vigil_file_changes_total{op=symlink,watched=false,result=error} = %v, want at least %d", v, failing)
	}
	if v := m.Value("vigil_file_changes_total", map[string]string{"op": "unlink", "watched": "true", "result": "ok"}); v < 1 {
		t.Errorf("vigil_file_changes_total{op=unlink,watched=true,result=ok} = %v, want at least 1", v)
	}
}

// More prefixes than the kernel filter holds: it holds a broader one, the
// configured prefixes still get their events, and what only the broader
// prefix let through is dropped in user space and counted.
func TestKernelFilterOverflow(t *testing.T) {
	testutil.RequireBPF(t)
	dir := realTempDir(t)
	var prefixes []string
	for i := range MaxWatched + 44 {
		prefixes = append(prefixes, fmt.Sprintf("%s/p%03d/", dir, i))
	}
	for _, d := range []string{"p007", "p299", "unlisted"} {
		mustMkdir(t, filepath.Join(dir, d))
		mustWrite(t, filepath.Join(dir, d, "f"))
	}
	calls := []childCall{
		{Name: "p007", NR: unix.SYS_UNLINK, Str: map[int]string{0: dir + "/p007/f"}},
		{Name: "p299", NR: unix.SYS_UNLINK, Str: map[int]string{0: dir + "/p299/f"}},
		{Name: "unlisted", NR: unix.SYS_UNLINK, Str: map[int]string{0: dir + "/unlisted/f"}},
	}
	cfg := DefaultConfig()
	cfg.WatchPaths = prefixes
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1024, KindFileChange)
	c := startChild(t, calls)
	p, reg := startProbe(t, cfg, bus)
	if len(p.plan.entries) > MaxWatched || p.plan.folded != len(prefixes) {
		t.Fatalf("plan: %d kernel entries, %d folded; want at most %d, %d folded", len(p.plan.entries), p.plan.folded, MaxWatched, len(prefixes))
	}
	c.run(t)
	got := collect(sub, c.cmd.Process.Pid, 3*time.Second, func(evs []*FileChange) bool { return len(evs) >= 2 })
	got = append(got, collect(sub, c.cmd.Process.Pid, 500*time.Millisecond, func([]*FileChange) bool { return false })...)
	paths := map[string]string{}
	for _, e := range got {
		paths[e.Path] = e.Watch
	}
	want := map[string]string{dir + "/p007/f": dir + "/p007/", dir + "/p299/f": dir + "/p299/"}
	if fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("events (path: watch) %v, want %v", paths, want)
	}
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Value("vigil_file_change_filter_dropped_total", nil); v != 1 {
		t.Errorf("vigil_file_change_filter_dropped_total = %v, want 1 (the unlisted unlink)", v)
	}
	if v := m.Value("vigil_file_change_watch_paths_folded", nil); v != float64(len(prefixes)) {
		t.Errorf("vigil_file_change_watch_paths_folded = %v, want %d", v, len(prefixes))
	}
}
