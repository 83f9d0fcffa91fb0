package open

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/metrics"
)

// A child opens known files; the events carry the exact absolute path,
// flags, mode, fd or errno, and the kernel counts match per cgroup.
func TestKernelOpenEvents(t *testing.T) {
	needBPF(t)
	dir := testDir(t)
	cgDir, cgID := newCgroup(t)
	c := startChild(t, dir)
	moveTo(t, cgDir, c.cmd.Process.Pid)

	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(c.cmd.Process.Pid)}
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1024, event.KindOpen)
	p := startProbe(t, cfg, bus)
	ops := c.run(t)

	byName := map[string]childOp{}
	for _, op := range ops {
		byName[op.Name] = op
	}
	inDir := func(evs []*event.Open) int {
		n := 0
		for _, e := range evs {
			if strings.HasPrefix(e.Path, dir) || strings.HasPrefix(e.Path, "/xxxx") || e.Path == "nodir.txt" {
				n++
			}
		}
		return n
	}
	got := collect(t, sub, 5*time.Second, func(evs []*event.Open) bool { return inDir(evs) >= len(ops) })
	for _, e := range got {
		if e.PID != uint32(c.cmd.Process.Pid) {
			t.Errorf("event from pid %d passed the pid filter (%s)", e.PID, e.Path)
		}
	}

	type want struct {
		syscall, path, passed, status string
		flags                         uint64
		mode                          uint32
		dirfd                         int32
		truncated                     bool
	}
	sub1 := filepath.Join(dir, "sub")
	wants := map[string]want{
		"absolute":       {"open", dir + "/exists.txt", dir + "/exists.txt", event.PathAbsolute, unix.O_RDONLY, 0, -100, false},
		"missing":        {"open", dir + "/missing.txt", "missing.txt", event.PathResolved, unix.O_RDONLY, 0, -100, false},
		"dirfd":          {"openat", sub1, sub1, event.PathAbsolute, unix.O_RDONLY | unix.O_DIRECTORY, 0, -100, false},
		"relative_dirfd": {"openat", sub1 + "/inner.txt", "inner.txt", event.PathResolved, unix.O_RDONLY | unix.O_CLOEXEC, 0, int32(byName["dirfd"].Ret), false},
		"created":        {"openat", dir + "/created.txt", "created.txt", event.PathResolved, unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC, 0o640, -100, false},
		"creat":          {"creat", dir + "/creat.txt", "creat.txt", event.PathResolved, unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC, 0o600, -100, false},
		"openat2":        {"openat2", dir + "/sub/inner.txt", "sub/inner.txt", event.PathResolved, unix.O_RDONLY | unix.O_NOFOLLOW, 0, -100, false},
		"bad_dirfd":      {"openat", "nodir.txt", "nodir.txt", event.PathUnresolved, unix.O_RDONLY, 0, 9999, false},
		"too_long":       {"open", "/" + strings.Repeat("x", pathBuf-2), "/" + strings.Repeat("x", pathBuf-2), event.PathAbsolute, unix.O_RDONLY, 0, -100, true},
	}
	if len(ops) != len(wants) {
		t.Fatalf("child made %d opens, test expects %d", len(ops), len(wants))
	}
	for _, op := range ops {
		w := wants[op.Name]
		var matches []*event.Open
		for _, e := range got {
			if e.Path == w.path && e.Syscall == w.syscall {
				matches = append(matches, e)
			}
		}
		if len(matches) != 1 {
			t.Errorf("%s: %d events for %s %q, want exactly 1", op.Name, len(matches), w.syscall, w.path)
			continue
		}
		e := matches[0]
		if e.PathPassed != w.passed || e.PathStatus != w.status || e.PathResolved != (w.status != event.PathUnresolved) || e.PathTruncated != w.truncated {
			t.Errorf("%s: passed %q status %s resolved %v truncated %v; want %q %s %v", op.Name, e.PathPassed, e.PathStatus, e.PathResolved, e.PathTruncated, w.passed, w.status, w.truncated)
		}
		if e.Flags != w.flags || e.Mode != w.mode || e.Dirfd != w.dirfd {
			t.Errorf("%s: flags %#o (%s) mode %#o dirfd %d; want %#o mode %#o dirfd %d", op.Name, e.Flags, e.FlagNames, e.Mode, e.Dirfd, w.flags, w.mode, w.dirfd)
		}
		if int(e.Ret) != op.Ret {
			t.Errorf("%s: ret %d, the child got %d", op.Name, e.Ret, op.Ret)
		}
		if op.Ret >= 0 && (e.FD != int32(op.Ret) || e.Error != "") {
			t.Errorf("%s: fd %d error %q, want fd %d", op.Name, e.FD, e.Error, op.Ret)
		}
		if op.Ret < 0 && (e.FD != -1 || e.Error != ErrnoName(int32(-op.Ret))) {
			t.Errorf("%s: fd %d error %q, want -1 %s", op.Name, e.FD, e.Error, ErrnoName(int32(-op.Ret)))
		}
		if e.CgroupID != cgID || e.TID != e.PID && e.TID == 0 {
			t.Errorf("%s: cgroup %d tid %d, want cgroup %d", op.Name, e.CgroupID, e.TID, cgID)
		}
	}
	// Expected errnos, to be sure the workload did what the test thinks.
	for name, errno := range map[string]unix.Errno{"missing": unix.ENOENT, "bad_dirfd": unix.EBADF, "too_long": unix.ENAMETOOLONG} {
		if byName[name].Ret != -int(errno) {
			t.Errorf("child %s: ret %d, want -%s", name, byName[name].Ret, ErrnoName(int32(errno)))
		}
	}

	// Kernel counts for the child's cgroup: every open, by errno.
	counts, err := p.Counts()
	if err != nil {
		t.Fatal(err)
	}
	byErr := map[uint32]uint64{}
	for _, k := range counts {
		if k.CgroupID == cgID {
			byErr[k.Errno] += k.Count
		}
	}
	wantErr := map[uint32]uint64{0: 6, uint32(unix.ENOENT): 1, uint32(unix.EBADF): 1, uint32(unix.ENAMETOOLONG): 1}
	for errno, n := range wantErr {
		if byErr[errno] != n {
			t.Errorf("kernel count for cgroup %d errno %d: %d, want %d (all: %v)", cgID, errno, byErr[errno], n, byErr)
		}
	}
	if len(byErr) != len(wantErr) {
		t.Errorf("kernel counts for the child's cgroup: %v, want %v", byErr, wantErr)
	}
}

// Filters apply in the kernel: with failed-only and a path prefix, only
// the failed opens under the prefix arrive.
func TestKernelOpenFilters(t *testing.T) {
	needBPF(t)
	dir := testDir(t)
	c := startChild(t, dir)
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(c.cmd.Process.Pid)}
	cfg.FailedOnly = true
	cfg.PathPrefixes = []string{dir + "/mis", "/nonexistent-prefix"}
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1024, event.KindOpen)
	p := startProbe(t, cfg, bus)
	c.run(t)
	// The child has exited: its records are in the ring buffer already.
	got := collect(t, sub, time.Second, func(evs []*event.Open) bool { return len(evs) >= 2 })
	if len(got) != 1 || got[0].Path != dir+"/missing.txt" || got[0].Error != "ENOENT" {
		for _, e := range got {
			t.Logf("event: %s %s %s", e.Syscall, e.Path, e.Error)
		}
		t.Fatalf("got %d events, want exactly the failed open of %s/missing.txt", len(got), dir)
	}
	if n := p.Obj.Received.Load(); n != 1 {
		t.Errorf("%d records crossed to user space, want 1: filtering must happen in the kernel", n)
	}
}

// With nobody consuming open events, no record crosses to user space, yet
// the kernel counts every open.
func TestKernelOpenCountsWithoutConsumer(t *testing.T) {
	needBPF(t)
	dir := testDir(t)
	cgDir, cgID := newCgroup(t)
	c := startChild(t, dir)
	moveTo(t, cgDir, c.cmd.Process.Pid)
	p := startProbe(t, DefaultConfig(), event.NewBus())
	c.run(t)
	time.Sleep(100 * time.Millisecond)
	if n := p.Obj.Received.Load(); n != 0 {
		t.Errorf("%d records crossed to user space with no consumer", n)
	}
	counts, err := p.Counts()
	if err != nil {
		t.Fatal(err)
	}
	var total, failed uint64
	for _, k := range counts {
		if k.CgroupID == cgID {
			total += k.Count
			if k.Errno != 0 {
				failed += k.Count
			}
		}
	}
	if total != 9 || failed != 3 {
		t.Errorf("kernel counts for the child's cgroup: %d opens, %d failed; want 9 and 3", total, failed)
	}
}

// A container filter selects the container's cgroup in the kernel, and the
// open metrics carry the container's short id.
func TestKernelOpenContainer(t *testing.T) {
	needBPF(t)
	dir := testDir(t)
	id := fmt.Sprintf("%016x", time.Now().UnixNano()) + strings.Repeat("ab", 24)
	parent, _ := newCgroup(t)
	ctr := filepath.Join(parent, "docker-"+id+".scope")
	if err := os.Mkdir(ctr, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(ctr) })
	c := startChild(t, dir)
	moveTo(t, ctr, c.cmd.Process.Pid)

	cfg := DefaultConfig()
	cfg.Containers = []string{id[:12]}
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1024, event.KindOpen)
	p := startProbe(t, cfg, bus)
	c.run(t)
	got := collect(t, sub, time.Second, func(evs []*event.Open) bool { return len(evs) > 9 })
	if len(got) != 9 {
		t.Errorf("%d events through the container filter, want the child's 9", len(got))
	}
	for _, e := range got {
		if e.PID != uint32(c.cmd.Process.Pid) || e.Container != id {
			t.Errorf("event from pid %d container %q passed the filter", e.PID, e.Container)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&countCollector{p: p, ctrCap: metrics.NewLabelCap("test", "container", 1000)})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var opens, enoent float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["container"] != id[:12] {
				continue
			}
			switch mf.GetName() {
			case "vigil_file_opens_total":
				opens += m.GetCounter().GetValue()
			case "vigil_file_open_errors_total":
				if l["errno"] == "ENOENT" {
					enoent += m.GetCounter().GetValue()
				}
			}
		}
	}
	if opens != 9 || enoent != 1 {
		t.Errorf("metrics for container %s: %v opens, %v ENOENT; want 9 and 1", id[:12], opens, enoent)
	}
}
