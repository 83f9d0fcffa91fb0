package process_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe/process"
	"github.com/vigilproject/vigil/internal/testutil"
)

// commandArgv0 runs path with argv[0] set to a marker, so the exec is
// attributable to the test by its first argument.
func commandArgv0(path string, argv ...string) *exec.Cmd {
	return &exec.Cmd{Path: path, Args: argv}
}

func execOf(pid int) func(*event.Exec) bool {
	return func(e *event.Exec) bool { return int(e.PID) == pid && e.Ret == 0 }
}

func exitOf(pid int) func(*event.Exit) bool {
	return func(e *event.Exit) bool { return int(e.PID) == pid }
}

// A shell that forks a 200 ms sleep and exits 7: exact identities, argv,
// exit codes, fork links and lifetimes for both processes.
func TestExecForkExitExact(t *testing.T) {
	h := startAgent(t, "")
	marker := testutil.Marker("vt")
	script := "sleep 0.2; exit 7"
	cmd := exec.Command("/bin/sh", "-c", script, marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("shell: %v, want exit status 7", err)
	}

	ex := waitN(h, 1, "exec of sh", execOf(pid))
	if len(ex) != 1 {
		t.Fatalf("%d exec events for pid %d, want 1", len(ex), pid)
	}
	e := ex[0]
	wantArgs := []string{"/bin/sh", "-c", script, marker}
	if !argsEqual(e.Args, wantArgs) || e.ArgsTruncated {
		t.Errorf("exec args %q truncated=%v, want %q untruncated", e.Args, e.ArgsTruncated, wantArgs)
	}
	if int(e.PPID) != os.Getpid() || e.TID != e.PID || e.UID != uint32(os.Getuid()) || e.GID != uint32(os.Getgid()) {
		t.Errorf("exec ids pid=%d tid=%d ppid=%d uid=%d gid=%d, want pid=tid=%d ppid=%d uid=%d gid=%d",
			e.PID, e.TID, e.PPID, e.UID, e.GID, pid, os.Getpid(), os.Getuid(), os.Getgid())
	}
	if e.Filename != "/bin/sh" || e.Exe != "/bin/sh" || e.Comm != "sh" || e.Ret != 0 || e.Error != "" {
		t.Errorf("exec filename=%q exe=%q comm=%q ret=%d error=%q", e.Filename, e.Exe, e.Comm, e.Ret, e.Error)
	}
	if e.StartNS == 0 {
		t.Error("exec start_time_ns is 0")
	}

	x := waitN(h, 1, "exit of sh", exitOf(pid))[0]
	if x.ExitCode != 7 || x.Signal != 0 || x.CoreDumped {
		t.Errorf("sh exit code=%d signal=%d core=%v, want 7, 0, false", x.ExitCode, x.Signal, x.CoreDumped)
	}
	if int(x.PPID) != os.Getpid() || x.StartNS != e.StartNS {
		t.Errorf("sh exit ppid=%d start=%d, want ppid=%d start=%d (identity is pid+start time)", x.PPID, x.StartNS, os.Getpid(), e.StartNS)
	}
	// The shell lives at least as long as the 200 ms nanosleep of its child
	// (the kernel never wakes it early); 300 ms on top covers fork, two
	// execs and scheduling on a loaded two-core machine.
	if x.LifetimeSeconds < 0.2 || x.LifetimeSeconds > 0.5 {
		t.Errorf("sh lifetime %.3fs, want within [0.2, 0.5]", x.LifetimeSeconds)
	}
	if x.Exe != "/bin/sh" {
		t.Errorf("exit exe %q from the process cache, want /bin/sh", x.Exe)
	}

	// The test process forked the shell; the fork carries the same start time.
	fk := waitN(h, 1, "fork of sh", func(f *event.Fork) bool { return int(f.ChildPID) == pid })
	if int(fk[0].PID) != os.Getpid() || fk[0].ChildStartNS != e.StartNS {
		t.Errorf("fork parent=%d child_start=%d, want parent=%d child_start=%d", fk[0].PID, fk[0].ChildStartNS, os.Getpid(), e.StartNS)
	}

	// The shell's own child: sleep 0.2.
	sl := waitN(h, 1, "exec of sleep", func(e *event.Exec) bool { return int(e.PPID) == pid && e.Ret == 0 })
	if len(sl) != 1 || !argsEqual(sl[0].Args, []string{"sleep", "0.2"}) || sl[0].Comm != "sleep" {
		t.Fatalf("child exec events %+v, want one sleep 0.2", sl)
	}
	sx := waitN(h, 1, "exit of sleep", exitOf(int(sl[0].PID)))[0]
	if sx.ExitCode != 0 || sx.Signal != 0 || int(sx.PPID) != pid {
		t.Errorf("sleep exit code=%d signal=%d ppid=%d, want 0, 0, %d", sx.ExitCode, sx.Signal, sx.PPID, pid)
	}
	if sx.LifetimeSeconds < 0.2 || sx.LifetimeSeconds > 0.5 {
		t.Errorf("sleep lifetime %.3fs, want within [0.2, 0.5]", sx.LifetimeSeconds)
	}
	sf := find(h, func(f *event.Fork) bool { return int(f.PID) == pid })
	if len(sf) != 1 || sf[0].ChildPID != sl[0].PID {
		t.Errorf("forks by sh: %+v, want exactly one, of pid %d", sf, sl[0].PID)
	}
}

// A child killed by SIGKILL reports the signal, not an exit code, and
// counts as "signaled" in vigil_process_exits_total.
func TestKilledChild(t *testing.T) {
	h := startAgent(t, "")
	exe := testutil.MarkerExecutable(t, "/bin/sleep", "vk")
	base := filepath.Base(exe)
	cmd := commandArgv0(exe, base, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	e := waitN(h, 1, "exec", execOf(pid))[0]
	if !argsEqual(e.Args, []string{base, "30"}) || e.Filename != exe || e.Comm != base[:min(len(base), 15)] {
		t.Errorf("exec args=%q filename=%q comm=%q", e.Args, e.Filename, e.Comm)
	}
	time.Sleep(50 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	x := waitN(h, 1, "exit", exitOf(pid))[0]
	if x.Signal != int(syscall.SIGKILL) || x.ExitCode != 0 || x.CoreDumped {
		t.Errorf("exit signal=%d code=%d core=%v, want signal 9, code 0, no core", x.Signal, x.ExitCode, x.CoreDumped)
	}
	if x.LifetimeSeconds < 0.05 || x.LifetimeSeconds > 5 {
		t.Errorf("lifetime %.3fs, want at least the 50 ms before the kill", x.LifetimeSeconds)
	}
	m := h.metrics()
	if v := m.Value("vigil_process_execs_total", map[string]string{"executable": base}); v != 1 {
		t.Errorf("vigil_process_execs_total{executable=%q} = %v, want 1", base, v)
	}
	if v := m.Value("vigil_process_exits_total", map[string]string{"executable": base, "outcome": "signaled"}); v != 1 {
		t.Errorf("vigil_process_exits_total{executable=%q,outcome=signaled} = %v, want 1; series %v", base, v, m.Series("vigil_process_exits_total"))
	}
}

// failExec calls execve on a path that does not exist from a locked thread
// of this process, so pid and tid of the failed exec are known exactly.
func failExec(t *testing.T, path string, argv []string) (tid int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid = unix.Gettid()
	err := syscall.Exec(path, argv, os.Environ())
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("exec %s: %v, want ENOENT", path, err)
	}
	return tid
}

func TestFailedExec(t *testing.T) {
	h := startAgent(t, "")
	marker := testutil.Marker("vf")
	path := "/nonexistent-" + marker + "/prog"
	argv := []string{path, "first arg", marker}
	tid := failExec(t, path, argv)

	match := func(e *event.Exec) bool { return e.Filename == path }
	e := waitN(h, 1, "failed exec", match)[0]
	if e.Ret != -2 || e.Error != "ENOENT" {
		t.Errorf("ret=%d error=%q, want -2 ENOENT", e.Ret, e.Error)
	}
	if !argsEqual(e.Args, argv) || e.ArgsTruncated {
		t.Errorf("args %q truncated=%v, want %q", e.Args, e.ArgsTruncated, argv)
	}
	if int(e.PID) != os.Getpid() || int(e.TID) != tid {
		t.Errorf("pid=%d tid=%d, want pid=%d tid=%d", e.PID, e.TID, os.Getpid(), tid)
	}
	h.settle()
	if n := len(find(h, match)); n != 1 {
		t.Errorf("%d events for one failed exec", n)
	}
	m := h.metrics()
	if v := m.Value("vigil_process_exec_failures_total", map[string]string{"executable": "prog", "errno": "ENOENT"}); v < 1 {
		t.Errorf("vigil_process_exec_failures_total{executable=prog,errno=ENOENT} = %v, want ≥ 1", v)
	}
	if v := m.Value("vigil_process_execs_total", map[string]string{"executable": "prog"}); v != 0 {
		t.Errorf("a failed exec counted as an exec: %v", v)
	}
}

// Every one of 500 raw forks (no exec) from one helper is seen with its
// fork, and its exit with the status the child chose.
func TestForkStorm(t *testing.T) {
	h := startAgent(t, "")
	const n = 500
	cmd := exec.Command(os.Args[0], strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=forkstorm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, stderr.Bytes())
	}
	helper := cmd.Process.Pid
	want := map[uint32]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var pid uint32
		var status int
		if _, err := fmt.Sscan(sc.Text(), &pid, &status); err != nil {
			t.Fatal(err)
		}
		want[pid] = status
	}
	if len(want) != n {
		t.Fatalf("helper reported %d children, want %d", len(want), n)
	}
	waitN(h, 1, "helper exit", exitOf(helper))
	h.settle()

	forks := find(h, func(f *event.Fork) bool { return int(f.PID) == helper })
	exits := find(h, func(x *event.Exit) bool { return int(x.PPID) == helper })
	if len(forks) != n || len(exits) != n {
		t.Errorf("saw %d forks and %d exits of the helper's children, want exactly %d each", len(forks), len(exits), n)
	}
	starts := map[uint32]uint64{}
	for _, f := range forks {
		if _, ok := want[f.ChildPID]; !ok {
			t.Errorf("fork of unexpected child %d", f.ChildPID)
		}
		starts[f.ChildPID] = f.ChildStartNS
	}
	for _, x := range exits {
		st, ok := want[x.PID]
		if !ok {
			t.Errorf("exit of unexpected child %d", x.PID)
			continue
		}
		if x.ExitCode != st || x.Signal != 0 {
			t.Errorf("child %d exit code=%d signal=%d, want %d", x.PID, x.ExitCode, x.Signal, st)
		}
		if x.StartNS != starts[x.PID] {
			t.Errorf("child %d exit start %d != fork child start %d", x.PID, x.StartNS, starts[x.PID])
		}
	}
	if d, _ := h.object().Dropped(); d != 0 {
		t.Errorf("ring buffer dropped %d records", d)
	}
}

// 300 fork+execs of a marker binary: one exec and one exit per child, with
// the exact argv each child got.
func TestExecStorm(t *testing.T) {
	h := startAgent(t, "")
	exe := testutil.MarkerExecutable(t, "/bin/true", "vs")
	const n = 300
	cmd := exec.Command(os.Args[0], strconv.Itoa(n), exe, "storm")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=execstorm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pids := strings.Fields(string(out))
	if len(pids) != n {
		t.Fatalf("helper reported %d children", len(pids))
	}
	waitN(h, 1, "helper exit", exitOf(cmd.Process.Pid))
	h.settle()
	execs := find(h, func(e *event.Exec) bool { return e.Filename == exe })
	exits := find(h, func(x *event.Exit) bool { return x.Exe == exe })
	if len(execs) != n || len(exits) != n {
		t.Fatalf("saw %d execs and %d exits of %s, want exactly %d each", len(execs), len(exits), exe, n)
	}
	byPID := map[string]*event.Exec{}
	for _, e := range execs {
		byPID[strconv.Itoa(int(e.PID))] = e
	}
	for i, p := range pids {
		e := byPID[p]
		if e == nil {
			t.Errorf("no exec event for child %s", p)
			continue
		}
		if want := []string{exe, "storm", strconv.Itoa(i)}; !argsEqual(e.Args, want) || int(e.PPID) != cmd.Process.Pid {
			t.Errorf("child %s: args %q ppid %d, want %q ppid %d", p, e.Args, e.PPID, want, cmd.Process.Pid)
		}
	}
	m := h.metrics()
	base := filepath.Base(exe)
	if v := m.Value("vigil_process_execs_total", map[string]string{"executable": base}); v != n {
		t.Errorf("vigil_process_execs_total{executable=%q} = %v, want %d", base, v, n)
	}
	if v := m.Value("vigil_process_exits_total", map[string]string{"executable": base, "outcome": "success"}); v != n {
		t.Errorf("vigil_process_exits_total{executable=%q,outcome=success} = %v, want %d", base, v, n)
	}
}

// With tp_btf ruled out, every sched program falls back to raw_tp and
// events still flow.
func TestHookFallbackRawTP(t *testing.T) {
	h := startAgent(t, "kernel:\n  disabled_hooks: [tp_btf]\n")
	for _, st := range h.object().Status() {
		if strings.HasPrefix(st.Name, "sched_") {
			if !st.Attached || st.Hook != kernel.RawTP {
				t.Errorf("%s: attached=%v hook=%s, want raw_tp", st.Name, st.Attached, st.Hook)
			}
			if len(st.Tried) != 1 || !strings.Contains(st.Tried[0], "disabled by configuration") {
				t.Errorf("%s: tried %q, want tp_btf disabled by configuration", st.Name, st.Tried)
			}
		}
	}
	marker := testutil.Marker("vr")
	cmd := exec.Command("/bin/sh", "-c", "exit 3", marker)
	_ = cmd.Run()
	pid := cmd.Process.Pid
	e := waitN(h, 1, "exec via raw_tp", execOf(pid))[0]
	if !argsEqual(e.Args, []string{"/bin/sh", "-c", "exit 3", marker}) {
		t.Errorf("args %q", e.Args)
	}
	if x := waitN(h, 1, "exit via raw_tp", exitOf(pid))[0]; x.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", x.ExitCode)
	}
	waitN(h, 1, "fork via raw_tp", func(f *event.Fork) bool { return int(f.ChildPID) == pid })
	m := h.metrics()
	if v := m.Value("vigil_probe_program_attached", map[string]string{"program": "sched_process_exec", "hook": "raw_tp"}); v != 1 {
		t.Errorf("vigil_probe_program_attached{program=sched_process_exec,hook=raw_tp} = %v; series %v", v, m.Series("vigil_probe_program_attached"))
	}
}

// When no hook candidate of a required program is allowed, Start fails
// naming the program, and the process holds no BPF program afterwards.
func TestRequiredProgramFailsCleanly(t *testing.T) {
	testutil.RequireBPF(t)
	before, err := testutil.ProgramIDsOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 0 {
		t.Fatalf("test process already holds BPF programs %v (a test leaked an agent)", before)
	}
	cfg := "kernel:\n  disabled_hooks: [tp_btf, raw_tp]\n"
	err = startAgentErr(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "required program sched_process_exec could not attach") ||
		!strings.Contains(err.Error(), "disabled by configuration") {
		t.Fatalf("Start: %v, want required program sched_process_exec could not attach", err)
	}
	after, err := testutil.ProgramIDsOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 0 {
		t.Errorf("after a failed start the process still holds BPF programs %v", after)
	}
}

// Child in a cgroup named like a docker scope: the exec event carries the
// container id parsed from the cgroup path the kernel reports.
func TestContainerEnrichment(t *testing.T) {
	testutil.RequireRoot(t)
	root, err := testutil.Cgroup2Mount()
	if err != nil {
		t.Skip("skipped:", err)
	}
	id := strings.Repeat(testutil.Marker("")[1:], 8) // 64 hex digits
	parent := filepath.Join(root, testutil.Marker("vigil-test"))
	dir := filepath.Join(parent, "docker-"+id+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skip("skipped: cannot create a cgroup:", err)
	}
	t.Cleanup(func() {
		_ = os.Remove(dir)
		_ = os.Remove(parent)
	})

	h := startAgent(t, "")
	// The resolver walks the hierarchy at most every 500 ms; let a walk that
	// predates the new cgroup age out so the miss can trigger a fresh one.
	time.Sleep(600 * time.Millisecond)

	marker := testutil.Marker("vc")
	cmd := exec.Command("/bin/sh", "-c", `read go; exec /bin/echo "$0"`, marker)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	_, _ = stdin.Write([]byte("go\n"))
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	e := waitN(h, 1, "exec in container", func(e *event.Exec) bool {
		return int(e.PID) == pid && len(e.Args) == 2 && e.Args[1] == marker
	})[0]
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if e.CgroupID != st.Ino {
		t.Errorf("cgroup_id %d, want %d (inode of %s)", e.CgroupID, st.Ino, dir)
	}
	if e.Container != id || e.Runtime != "docker" {
		t.Errorf("container_id=%q runtime=%q, want %q docker", e.Container, e.Runtime, id)
	}
	m := h.metrics()
	if v := m.Value("vigil_process_execs_total", map[string]string{"executable": "echo", "container": id[:12]}); v != 1 {
		t.Errorf("vigil_process_execs_total{executable=echo,container=%s} = %v; series %v", id[:12], v, m.Series("vigil_process_execs_total"))
	}
}

// A process with many threads is one fork and one exit: threads are neither
// forks nor exits, and the exit code is the one the process exited with,
// whichever thread called exit.
func TestThreadsAreNotProcesses(t *testing.T) {
	t.Run("group_dead", func(t *testing.T) { testThreadsAreNotProcesses(t) })
	// The fallback for kernels before 6.16, whose tracepoint has no
	// group_dead: all threads may read signal->live == 0 at once.
	t.Run("signal_live", func(t *testing.T) {
		saved := *process.ExitHooks
		*process.ExitHooks = saved[2:]
		t.Cleanup(func() { *process.ExitHooks = saved })
		testThreadsAreNotProcesses(t)
	})
}

func testThreadsAreNotProcesses(t *testing.T) {
	h := startAgent(t, "")
	for _, st := range h.a.Objects()[0].Status() {
		if st.Name == "sched_process_exit" {
			t.Logf("exit program: %s (%s)", st.BPFProgram, st.Hook)
			if want := (*process.ExitHooks)[0].Program; st.BPFProgram != want {
				t.Fatalf("exit attached through %s, want %s", st.BPFProgram, want)
			}
		}
	}
	cmd := exec.Command(os.Args[0], "16", "3")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=threads")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("helper: %v, want exit status 3", err)
	}
	pid := cmd.Process.Pid
	x := waitN(h, 1, "helper exit", exitOf(pid))[0]
	h.settle()
	if n := len(find(h, exitOf(pid))); n != 1 {
		t.Errorf("%d exit events for one process with 17+ threads, want 1", n)
	}
	if x.ExitCode != 3 || x.Signal != 0 {
		t.Errorf("exit code %d signal %d, want 3, 0", x.ExitCode, x.Signal)
	}
	if f := find(h, func(f *event.Fork) bool { return int(f.PID) == pid }); len(f) != 0 {
		t.Errorf("threads reported as %d forks", len(f))
	}
	if f := find(h, func(f *event.Fork) bool { return int(f.ChildPID) == pid }); len(f) != 1 {
		t.Errorf("%d fork events creating the helper, want 1", len(f))
	}
}
