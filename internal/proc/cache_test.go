package proc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func proc(pid, ppid uint32, start uint64, comm string) Process {
	return Process{PID: pid, PPID: ppid, StartNS: start, Comm: comm, Exe: "/usr/bin/" + comm, Args: []string{comm}}
}

func mustGet(t *testing.T, c *Cache, pid uint32) Process {
	t.Helper()
	p, ok := c.Get(pid)
	if !ok {
		t.Fatalf("Get(%d): not found", pid)
	}
	return p
}

func TestExecGet(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "system.slice/docker-"+id1+".scope")
	cgid := inode(t, filepath.Join(root, "system.slice/docker-"+id1+".scope"))
	cg := NewCgroups(root, 100)
	c := NewCache(10, cg)

	in := Process{PID: 100, PPID: 1, StartNS: 5e9, UID: 1000, GID: 1000, Comm: "nginx",
		Exe: "/usr/sbin/nginx", Args: []string{"nginx", "-g", "daemon off;"}, CgroupID: cgid}
	got := c.Exec(in)
	want := in
	want.Cgroup = "/system.slice/docker-" + id1 + ".scope"
	want.Container = Container{ID: id1, Runtime: "docker"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Exec returned\n %+v\nwant\n %+v", got, want)
	}
	if p := mustGet(t, c, 100); !reflect.DeepEqual(p, want) {
		t.Errorf("Get = %+v", p)
	}
	if !got.Alive() {
		t.Error("fresh process not alive")
	}
	if _, ok := c.Get(101); ok {
		t.Error("Get(101) found something")
	}
	if c.Len() != 1 || c.misses.Load() != 1 {
		t.Errorf("Len = %d misses = %d", c.Len(), c.misses.Load())
	}
}

func TestExecKeepsKnownFields(t *testing.T) {
	c := NewCache(10, nil)
	c.Exec(Process{PID: 7, PPID: 3, StartNS: 42e9, Comm: "sh", Cgroup: "/system.slice/cron.service", CgroupID: 99})
	// An exec event that lacks the start time, ppid and cgroup.
	got := c.Exec(Process{PID: 7, Comm: "backup", Args: []string{"backup", "--all"}})
	if got.StartNS != 42e9 || got.PPID != 3 || got.CgroupID != 99 || got.Container.Unit != "cron.service" {
		t.Errorf("known fields lost: %+v", got)
	}
	if got.Comm != "backup" || !reflect.DeepEqual(got.Args, []string{"backup", "--all"}) {
		t.Errorf("exec did not replace the image: %+v", got)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d", c.Len())
	}
}

func TestPidReuse(t *testing.T) {
	c := NewCache(10, nil)
	c.Exec(proc(100, 1, 10e9, "old"))
	c.Exec(proc(100, 1, 20e9, "new")) // same pid, new process
	if p := mustGet(t, c, 100); p.Comm != "new" || p.StartNS != 20e9 || !p.Alive() {
		t.Errorf("Get = %+v, want the new process", p)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
	// A late exit of the old process must not kill the new one.
	if old, ok := c.Exit(100, 10e9); !ok || old.Comm != "old" || old.Alive() {
		t.Errorf("Exit(old) = %+v, %v", old, ok)
	}
	if p := mustGet(t, c, 100); p.Comm != "new" || !p.Alive() {
		t.Errorf("after the old exit Get = %+v", p)
	}
	// Fork with a new start time replaces a stale entry too.
	c.Exec(proc(1, 0, 1e9, "init"))
	c.Fork(1, 100, 30e9)
	if p := mustGet(t, c, 100); p.Comm != "init" || p.StartNS != 30e9 || p.PPID != 1 {
		t.Errorf("after fork with reused pid Get = %+v", p)
	}
	// A start time from /proc (ticks) matches an exact one.
	c.Exec(proc(200, 1, 12_345_678_901, "a"))
	if _, ok := c.Exit(200, 12_345_678_901/tickNS*tickNS); !ok {
		t.Error("tick-rounded start time did not match")
	}
}

func TestFork(t *testing.T) {
	c := NewCache(10, nil)
	parent := c.Exec(Process{PID: 10, PPID: 1, StartNS: 1e9, UID: 33, GID: 33, Comm: "php-fpm",
		Exe: "/usr/sbin/php-fpm", Args: []string{"php-fpm: master"}, CgroupID: 5,
		Cgroup: "/kubepods/pod" + uid + "/" + id1})
	c.Fork(10, 11, 2e9)
	child := mustGet(t, c, 11)
	want := parent
	want.PID, want.PPID, want.StartNS = 11, 10, 2e9
	if !reflect.DeepEqual(child, want) {
		t.Errorf("child\n %+v\nwant\n %+v", child, want)
	}
	if child.Container.ID != id1 || child.Container.PodUID != uid {
		t.Errorf("child container = %+v", child.Container)
	}

	// The child's exec arrived before the fork: the fork must not undo it.
	c.Exec(proc(12, 10, 3e9, "curl"))
	c.Fork(10, 12, 3e9)
	if p := mustGet(t, c, 12); p.Comm != "curl" {
		t.Errorf("fork overwrote an exec: %+v", p)
	}

	// Unknown parent: nothing recorded.
	c.Fork(999, 13, 4e9)
	if _, ok := c.Get(13); ok {
		t.Error("child of an unknown parent recorded")
	}

	// Parent already exited: still inherits.
	c.Exit(10, 1e9)
	c.Fork(10, 14, 5e9)
	if p := mustGet(t, c, 14); p.Comm != "php-fpm" || !p.Alive() {
		t.Errorf("child of exited parent = %+v", p)
	}
}

func TestExitKeepsRecent(t *testing.T) {
	c := NewCache(4, nil) // exited area: min(1024, 4) = 4
	for pid := uint32(1); pid <= 6; pid++ {
		c.Exec(proc(pid, 0, uint64(pid)*1e9, "p"+strconv.Itoa(int(pid))))
		before := time.Now()
		p, ok := c.Exit(pid, uint64(pid)*1e9)
		if !ok || p.ExitedAt.Before(before) || p.Alive() {
			t.Fatalf("Exit(%d) = %+v, %v", pid, p, ok)
		}
	}
	if c.Len() != 0 {
		t.Errorf("Len = %d, want 0 live", c.Len())
	}
	for pid := uint32(1); pid <= 2; pid++ {
		if _, ok := c.Get(pid); ok {
			t.Errorf("pid %d should have aged out of the exited area", pid)
		}
	}
	for pid := uint32(3); pid <= 6; pid++ {
		if p := mustGet(t, c, pid); p.Alive() || p.Comm != "p"+strconv.Itoa(int(pid)) {
			t.Errorf("exited pid %d: %+v", pid, p)
		}
	}
	if c.exitedLen() != 4 {
		t.Errorf("exited = %d, want 4", c.exitedLen())
	}
	// A duplicate exit is answered from the exited area.
	if _, ok := c.Exit(6, 6e9); !ok {
		t.Error("second Exit(6) not found")
	}
	if _, ok := c.Exit(6, 7e9); ok {
		t.Error("Exit with a different start time matched")
	}
	if _, ok := c.Exit(77, 0); ok {
		t.Error("Exit of an unknown pid matched")
	}
}

func TestEvictionAtBound(t *testing.T) {
	c := NewCache(3, nil)
	c.Exec(proc(1, 0, 1e9, "a"))
	c.Exec(proc(2, 0, 2e9, "b"))
	c.Exec(proc(3, 0, 3e9, "c"))
	c.Get(1) // recently used: survives the next eviction
	c.Exec(proc(4, 0, 4e9, "d"))
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
	if c.evictions.Load() != 1 {
		t.Errorf("evictions = %d, want 1", c.evictions.Load())
	}
	if _, ok := c.Get(2); ok {
		t.Error("pid 2, the least recently used, was not evicted")
	}
	for _, pid := range []uint32{1, 3, 4} {
		mustGet(t, c, pid)
	}
	// Everything used: the clock hand comes round to the oldest, 3 (1 had
	// its second chance and went behind it).
	c.Exec(proc(5, 0, 5e9, "e"))
	if _, ok := c.Get(3); ok {
		t.Error("pid 3 not evicted when all were used")
	}
	for i := uint32(100); i < 1100; i++ {
		c.Exec(proc(i, 0, uint64(i)*1e9, "x"))
	}
	if c.Len() != 3 || c.evictions.Load() != 2+1000 {
		t.Errorf("Len = %d evictions = %d", c.Len(), c.evictions.Load())
	}
	// At the bound, a new process reuses the evicted entry: no allocation.
	p := proc(0, 0, 0, "y")
	allocs := testing.AllocsPerRun(1000, func() {
		p.PID++
		p.StartNS += 1e9
		c.Exec(p)
	})
	if allocs != 0 {
		t.Errorf("Exec at the bound allocates %.1f times", allocs)
	}
}

func TestLookup(t *testing.T) {
	procRoot := t.TempDir()
	cgRoot := t.TempDir()
	mkdirs(t, cgRoot, "system.slice/ssh.service", "kubepods/pod"+uid+"/"+id2)
	sshID := inode(t, filepath.Join(cgRoot, "system.slice/ssh.service"))
	podID := inode(t, filepath.Join(cgRoot, "kubepods/pod"+uid+"/"+id2))
	cg := NewCgroups(cgRoot, 100)
	c := NewCache(100, cg)
	c.procRoot = procRoot

	writeFakeProc(t, procRoot, fakeProcess{pid: 500, ppid: 1, comm: "sshd", startTicks: 100, exe: "/usr/sbin/sshd",
		args: []string{"sshd: alice [priv]"}, cgroup: "/system.slice/ssh.service"})
	writeFakeProc(t, procRoot, fakeProcess{pid: 501, ppid: 1, comm: "sshd", startTicks: 100, cgroup: "/system.slice/ssh.service"})
	c.SetProcReadLimit(1)

	// Miss, read from /proc, cached.
	p := c.Lookup(500, 0)
	if p.Comm != "sshd" || p.Exe != "/usr/sbin/sshd" || p.CgroupID != sshID || p.Container.Unit != "ssh.service" {
		t.Errorf("Lookup(500) = %+v", p)
	}
	if c.procReads.Load() != 1 || c.Len() != 1 {
		t.Errorf("procReads = %d Len = %d", c.procReads.Load(), c.Len())
	}
	// Hit: no read.
	if p := c.Lookup(500, sshID); p.Comm != "sshd" || c.procReads.Load() != 1 {
		t.Errorf("hit: %+v, reads %d", p, c.procReads.Load())
	}
	// Rate limit reached: minimal process, container from the cgroup id.
	p = c.Lookup(501, podID)
	want := Process{PID: 501, CgroupID: podID, Cgroup: "/kubepods/pod" + uid + "/" + id2,
		Container: Container{ID: id2, Runtime: "containerd", PodUID: uid}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("rate-limited Lookup = %+v\nwant %+v", p, want)
	}
	// Nothing in /proc either.
	c.SetProcReadLimit(100)
	if p := c.Lookup(502, 0); !reflect.DeepEqual(p, Process{PID: 502}) {
		t.Errorf("Lookup of a vanished pid = %+v", p)
	}
	// The event's cgroup id wins: the process moved.
	if p := c.Lookup(500, podID); p.Container.ID != id2 || p.CgroupID != podID {
		t.Errorf("moved process: %+v", p)
	}
	if p := mustGet(t, c, 500); p.Container.ID != id2 {
		t.Errorf("move not stored: %+v", p)
	}
	if c.misses.Load() != 3 {
		t.Errorf("misses = %d, want 3", c.misses.Load())
	}
}

func TestLookupResolvesLateCgroup(t *testing.T) {
	cgRoot := t.TempDir()
	cg := NewCgroups(cgRoot, 100)
	cg.walkInterval = time.Hour
	c := NewCache(10, cg)
	cg.Path(1 << 62) // uses up the walk
	mkdirs(t, cgRoot, "machine.slice/libpod-"+id1+".scope")
	id := inode(t, filepath.Join(cgRoot, "machine.slice/libpod-"+id1+".scope"))
	if p := c.Exec(Process{PID: 9, StartNS: 1e9, Comm: "x", CgroupID: id}); p.Cgroup != "" {
		t.Fatalf("resolved without a walk: %+v", p)
	}
	cg.lastWalk = time.Time{}
	if p := c.Lookup(9, id); p.Container.ID != id1 || p.Container.Runtime != "podman" {
		t.Errorf("Lookup did not resolve the cgroup later: %+v", p)
	}
	if p := mustGet(t, c, 9); p.Container.ID != id1 {
		t.Errorf("late resolution not stored: %+v", p)
	}
}

func TestAncestors(t *testing.T) {
	c := NewCache(100, nil)
	c.Exec(proc(1, 0, 1e9, "systemd"))
	c.Exec(proc(10, 1, 2e9, "sshd"))
	c.Exec(proc(20, 10, 3e9, "bash"))
	c.Exec(proc(30, 20, 4e9, "curl"))
	comms := func(ps []Process) []string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Comm)
		}
		return s
	}
	if got := comms(c.Ancestors(30, 10)); !reflect.DeepEqual(got, []string{"bash", "sshd", "systemd"}) {
		t.Errorf("Ancestors(30, 10) = %v", got)
	}
	if got := comms(c.Ancestors(30, 2)); !reflect.DeepEqual(got, []string{"bash", "sshd"}) {
		t.Errorf("Ancestors(30, 2) = %v", got)
	}
	if got := c.Ancestors(30, 0); got != nil {
		t.Errorf("depth 0 = %v", got)
	}
	if got := c.Ancestors(404, 5); got != nil {
		t.Errorf("unknown pid = %v", got)
	}
	// The parent exited and its pid now belongs to a younger process.
	c.Exit(20, 3e9)
	c.Exec(proc(20, 1, 9e9, "reused"))
	if got := comms(c.Ancestors(30, 10)); got != nil {
		t.Errorf("chain went through a reused pid: %v", got)
	}
	// A cycle (corrupt ppids) is bounded by depth.
	c.Exec(proc(40, 41, 0, "a"))
	c.Exec(proc(41, 40, 0, "b"))
	if got := c.Ancestors(40, 5); len(got) != 5 {
		t.Errorf("cycle: %d ancestors, want 5", len(got))
	}
}

// statStartNS reads field 22 of /proc/<pid>/stat independently of parseStat.
func statStartNS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	ticks, err := strconv.ParseUint(string(fields[22-3]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ticks * tickNS
}

func TestScanFindsSelf(t *testing.T) {
	c := NewCache(0, NewCgroups("/sys/fs/cgroup", 4096))
	if err := c.Scan("/proc"); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	p := mustGet(t, c, uint32(pid))
	if p.PPID != uint32(os.Getppid()) {
		t.Errorf("PPID = %d, want %d", p.PPID, os.Getppid())
	}
	if !reflect.DeepEqual(p.Args, os.Args) {
		t.Errorf("Args = %q, want %q", p.Args, os.Args)
	}
	if want := statStartNS(t, pid); p.StartNS != want || p.StartNS == 0 {
		t.Errorf("StartNS = %d, want %d", p.StartNS, want)
	}
	if exe, _ := os.Executable(); p.Exe != exe {
		t.Errorf("Exe = %q, want %q", p.Exe, exe)
	}
	if p.UID != uint32(os.Getuid()) || p.GID != uint32(os.Getgid()) {
		t.Errorf("UID/GID = %d/%d", p.UID, p.GID)
	}
	if comm, _ := os.ReadFile("/proc/self/comm"); p.Comm != string(bytes.TrimSpace(comm)) {
		t.Errorf("Comm = %q, want %q", p.Comm, comm)
	}
	if p.Cgroup == "" {
		t.Error("no cgroup path")
	}
	if init, ok := c.Get(1); !ok || init.PPID != 0 {
		t.Errorf("pid 1 = %+v, %v", init, ok)
	}
	if c.Len() < 2 {
		t.Errorf("Len = %d", c.Len())
	}
}

// startMarked starts `sleep 5 <marker>`; sleep sums its arguments, so the
// marker is a tiny unique duration.
func startMarked(t *testing.T) (*exec.Cmd, []string) {
	t.Helper()
	marker := fmt.Sprintf("0.000%06d", time.Now().UnixNano()%1e6)
	cmd := exec.Command("sleep", "5", marker)
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, []string{"sleep", "5", marker}
}

func TestScanChildThenExit(t *testing.T) {
	cmd, args := startMarked(t)
	pid := uint32(cmd.Process.Pid)
	// The fork's child shows the parent's argv until it has exec'd.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm")
		if string(bytes.TrimSpace(b)) == "sleep" || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	c := NewCache(0, nil)
	if err := c.Scan("/proc"); err != nil {
		t.Fatal(err)
	}
	p := mustGet(t, c, pid)
	if !reflect.DeepEqual(p.Args, args) || p.Comm != "sleep" || p.PPID != uint32(os.Getpid()) {
		t.Errorf("child = %+v, want args %q", p, args)
	}
	if want := statStartNS(t, int(pid)); p.StartNS != want {
		t.Errorf("StartNS = %d, want %d", p.StartNS, want)
	}
	if want, _ := filepath.EvalSymlinks(cmd.Path); p.Exe != want {
		t.Errorf("Exe = %q, want %q", p.Exe, want)
	}

	// The process dies without an exit event: the next scan retires it.
	cmd.Process.Kill()
	cmd.Wait()
	if err := c.Scan("/proc"); err != nil {
		t.Fatal(err)
	}
	if p := mustGet(t, c, pid); p.Alive() {
		t.Errorf("dead child still alive in the cache: %+v", p)
	}
}

func TestScanRealCgroupContainer(t *testing.T) {
	rel := "vigil-test-" + strconv.Itoa(os.Getpid()) + "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope"
	g, dir := realCgroup(t, rel)
	cmd, args := startMarked(t)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Skipf("cannot move a process into a cgroup: %v", err)
	}
	c := NewCache(0, g)
	if err := c.Scan("/proc"); err != nil {
		t.Fatal(err)
	}
	p := mustGet(t, c, uint32(cmd.Process.Pid))
	want := Container{ID: id1, Runtime: "containerd", PodUID: uid}
	if p.Cgroup != "/"+rel || p.CgroupID != inode(t, dir) || p.Container != want {
		t.Errorf("got cgroup %q id %d container %+v\nwant %q id %d container %+v",
			p.Cgroup, p.CgroupID, p.Container, "/"+rel, inode(t, dir), want)
	}
	if !reflect.DeepEqual(p.Args, args) {
		t.Errorf("Args = %q", p.Args)
	}
	// The scan taught the resolver this id: no walk needed.
	if c := g.Container(inode(t, dir)); c != want || g.walks.Load() != 0 {
		t.Errorf("resolver: %+v after %d walks", c, g.walks.Load())
	}
	// An exec event with only the cgroup id gets the same answer.
	if e := c.Exec(Process{PID: 1 << 30, CgroupID: inode(t, dir)}); e.Container != want {
		t.Errorf("Exec enrichment = %+v", e.Container)
	}
}

func TestScanDefersToEvents(t *testing.T) {
	c := NewCache(10, nil)
	c.Exec(proc(50, 1, 1e9, "before"))
	startGen := c.gen
	c.Exec(proc(50, 1, 1e9, "during")) // an exec event while the scan reads /proc
	c.applyScan([]Process{proc(50, 1, 1e9/tickNS*tickNS, "stale")}, startGen)
	if p := mustGet(t, c, 50); p.Comm != "during" {
		t.Errorf("scan overwrote a newer event: %+v", p)
	}
	// Without a concurrent event the scan updates, keeping the exact start.
	c.Exec(proc(60, 1, 2_000_000_123, "old"))
	startGen = c.gen
	c.applyScan([]Process{proc(60, 1, 2_000_000_000, "scanned")}, startGen)
	if p := mustGet(t, c, 60); p.Comm != "scanned" || p.StartNS != 2_000_000_123 {
		t.Errorf("scan update = %+v", p)
	}
}

func TestScanFake(t *testing.T) {
	root := t.TempDir()
	writeFakeProc(t, root, fakeProcess{pid: 1, comm: "systemd", startTicks: 1, cgroup: "/init.scope"})
	writeFakeProc(t, root, fakeProcess{pid: 2, ppid: 1, comm: "dockerd", startTicks: 2, cgroup: "/system.slice/docker.service"})
	if err := os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCache(10, nil)
	if err := c.Scan(root); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d", c.Len())
	}
	if p := mustGet(t, c, 2); p.Container.Unit != "docker.service" || p.StartNS != 2*tickNS {
		t.Errorf("pid 2 = %+v", p)
	}
	if err := c.Scan(filepath.Join(root, "missing")); err == nil {
		t.Error("Scan of a missing root succeeded")
	}
}

func TestMetrics(t *testing.T) {
	c := NewCache(2, NewCgroups(t.TempDir(), 10))
	c.Exec(proc(1, 0, 1e9, "a"))
	c.Exec(proc(2, 0, 2e9, "b"))
	c.Exec(proc(3, 0, 3e9, "c"))
	c.Exit(3, 3e9)
	c.Get(99)
	reg := prometheus.NewPedanticRegistry()
	for _, col := range c.Collectors() {
		if err := reg.Register(col); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	want := map[string]float64{
		"vigil_process_cache_entries":          1,
		"vigil_process_cache_exited_entries":   1,
		"vigil_process_cache_max_entries":      2,
		"vigil_process_cache_evictions_total":  1,
		"vigil_process_cache_misses_total":     1,
		"vigil_process_cache_proc_reads_total": 0,
		"vigil_cgroup_cache_entries":           0,
		"vigil_cgroup_cache_misses_total":      0,
		"vigil_cgroup_cache_walks_total":       0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metrics\n got  %v\n want %v", got, want)
	}
}

// Run with -race: every entry point at once.
func TestConcurrent(t *testing.T) {
	cg := NewCgroups(t.TempDir(), 10)
	c := NewCache(64, cg)
	c.procRoot = t.TempDir()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				pid := uint32(i%100 + 1)
				start := uint64(i/100+1) * 1e9
				switch (i + w) % 6 {
				case 0:
					c.Exec(proc(pid, pid-1, start, "x"))
				case 1:
					c.Fork(pid, pid+1, start)
				case 2:
					c.Exit(pid, start)
				case 3:
					c.Get(pid)
				case 4:
					c.Lookup(pid, uint64(i%3))
				case 5:
					c.Ancestors(pid, 4)
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			c.Scan(c.procRoot)
		}
	}()
	wg.Wait()
	if n := c.Len(); n > 64 {
		t.Errorf("Len = %d beyond the bound", n)
	}
	// The CLOCK list and the map must agree.
	n := 0
	for e := c.head; e != nil; e = e.next {
		if c.live[e.p.PID] != e {
			t.Fatalf("list entry %d not in the map", e.p.PID)
		}
		n++
	}
	if n != len(c.live) {
		t.Errorf("list has %d entries, map %d", n, len(c.live))
	}
}

// A container's first exec can come right after a walk made for another id;
// the rate-limited walk cannot see it yet, /proc/<pid>/cgroup can.
func TestExecResolvesNewCgroupBetweenWalks(t *testing.T) {
	rel := "vigil-test-new-" + strconv.Itoa(os.Getpid()) + "/system.slice/docker-" + id1 + ".scope"
	g, dir := realCgroup(t, rel)
	g.walkInterval = time.Hour
	g.Container(1 << 62) // an unknown id: spends the walk now
	if g.walks.Load() != 1 {
		t.Fatalf("walks = %d, want 1", g.walks.Load())
	}
	cmd, _ := startMarked(t)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Skipf("cannot move a process into a cgroup: %v", err)
	}
	c := NewCache(0, g)
	p := c.Exec(Process{PID: uint32(cmd.Process.Pid), CgroupID: inode(t, dir)})
	if want := (Container{ID: id1, Runtime: "docker"}); p.Container != want || p.Cgroup != "/"+rel {
		t.Fatalf("Exec enrichment = %q %+v, want %q %+v", p.Cgroup, p.Container, "/"+rel, want)
	}
	if g.walks.Load() != 1 {
		t.Errorf("walks = %d: resolved by walking, not from /proc", g.walks.Load())
	}
	// Learned: the next lookup needs neither.
	if got := g.Container(inode(t, dir)); got.ID != id1 {
		t.Errorf("resolver did not remember the id: %+v", got)
	}
}

// An entry describes the kernel's task only for the same pid and start time,
// and for a main thread only while it still runs the same program.
func TestDescribes(t *testing.T) {
	forked := Process{PID: 100, StartNS: 5_000_000_000, Comm: "bash", Exe: "/usr/bin/bash"}
	for _, c := range []struct {
		name      string
		pid, tid  uint32
		start     uint64
		comm      string
		describes bool
	}{
		{"same process and program", 100, 100, 5_004_000_000, "bash", true},
		{"exec not yet seen: main thread runs cp", 100, 100, 5_000_000_000, "cp", false},
		{"a thread that named itself", 100, 101, 5_000_000_000, "worker", true},
		{"earlier process with the same pid", 100, 100, 9_000_000_000, "bash", false},
		{"another pid", 101, 101, 5_000_000_000, "bash", false},
		{"start time unknown", 100, 100, 0, "bash", true},
	} {
		if got := forked.Describes(c.pid, c.tid, c.start, c.comm); got != c.describes {
			t.Errorf("%s: Describes = %v, want %v", c.name, got, c.describes)
		}
	}
}
