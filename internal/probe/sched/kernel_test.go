package sched

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
	"github.com/vigilproject/vigil/internal/testutil"
)

// startProbe loads the probe with cfg and registers its collectors (and the
// agent's self-metrics for it) on a fresh registry.
func startProbe(t *testing.T, cfg *Config, disabled ...kernel.HookKind) (*Probe, *prometheus.Registry) {
	t.Helper()
	testutil.RequireBPF(t)
	kernel.RaiseMemlock()
	cfg.ThreadStats = true // the tests read single threads
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p := New(cfg)
	env := &probe.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, LabelLimit: 100, DisabledHooks: disabled}
	testutil.SkipIfNotPermitted(t, p.Start(env))
	t.Cleanup(func() { _ = p.Close() })
	return p, reg
}

// onThread runs f on a fresh OS thread with SIGURG blocked, so the Go
// runtime's preemption signal cannot interrupt f's raw syscalls, and returns
// the thread's id, its totals before and after f, and f's wall time.
func onThread(t *testing.T, p *Probe, f func() error) (tid uint32, before, after Stats, wall time.Duration) {
	t.Helper()
	type result struct {
		tid           uint32
		before, after Stats
		wall          time.Duration
		err           error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var r result
		r.tid = uint32(unix.Gettid())
		set := uint64(1) << (unix.SIGURG - 1)
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0); e != 0 {
			r.err = e
			ch <- r
			return
		}
		// A short sleep makes sure the thread has an entry to read.
		unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&unix.Timespec{Nsec: 1e6})), 0, 0)
		b, ok, err := p.Thread(r.tid)
		if err != nil || !ok {
			r.err = err
			if !ok {
				r.err = os.ErrNotExist
			}
			ch <- r
			return
		}
		t0 := time.Now()
		r.err = f()
		r.wall = time.Since(t0)
		a, _, err := p.Thread(r.tid)
		if r.err == nil {
			r.err = err
		}
		r.before, r.after = b.Stats, a.Stats
		ch <- r
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("thread %d: %v", r.tid, r.err)
	}
	return r.tid, r.before, r.after, r.wall
}

// Each wait accrues its reason, for about the time the thread waited, and
// no other voluntary reason, except "lock" when the Go runtime parks the
// thread (a locked thread preempted at a function prologue waits in futex).
func TestOffCPUReasons(t *testing.T) {
	p, _ := startProbe(t, DefaultConfig())
	const waitFor = 200 * time.Millisecond

	check := func(t *testing.T, want Reason, f func() error) {
		t.Helper()
		tid, before, after, wall := onThread(t, p, f)
		d := after.Sub(before)
		got := time.Duration(d.OffCPUNS[want])
		t.Logf("thread %d: %s %v (wall %v), off-CPU %v ns by reason, counts %v", tid, want, got, wall, d.OffCPUNS, d.OffCPUCount)
		if want == IO {
			if got <= 0 || d.OffCPUCount[IO] == 0 || got > wall {
				t.Errorf("io: %v in %d waits, want > 0 and at most the wall time %v", got, d.OffCPUCount[IO], wall)
			}
		} else if got < waitFor-time.Millisecond || got > wall || (want != Lock && d.OffCPUCount[want] != 1) {
			t.Errorf("%s: %v in %d intervals, want one interval of [%v, %v]", want, got, d.OffCPUCount[want], waitFor-time.Millisecond, wall)
		}
		for _, r := range []Reason{Sleep, IO} {
			if r != want && d.OffCPUNS[r] != 0 {
				t.Errorf("%s: also %v of %s", want, time.Duration(d.OffCPUNS[r]), r)
			}
		}
		if want != Lock && time.Duration(d.OffCPUNS[want]+d.OffCPUNS[Lock]) > wall {
			t.Errorf("%s: %v plus %v of runtime lock waits exceed the wall time %v", want, got, time.Duration(d.OffCPUNS[Lock]), wall)
		}
	}

	t.Run("nanosleep is sleep", func(t *testing.T) {
		check(t, Sleep, func() error {
			ts := unix.NsecToTimespec(waitFor.Nanoseconds())
			if _, _, e := unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0); e != 0 {
				return e
			}
			return nil
		})
	})
	t.Run("futex wait is lock", func(t *testing.T) {
		check(t, Lock, func() error {
			var word uint32
			ts := unix.NsecToTimespec(waitFor.Nanoseconds())
			_, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&word)), 0 /* FUTEX_WAIT */ |128 /* PRIVATE */, 0, uintptr(unsafe.Pointer(&ts)), 0, 0)
			if e != unix.ETIMEDOUT {
				return e
			}
			return nil
		})
	})
	t.Run("O_DIRECT read and fsync are io", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "data")
		const size = 4 << 20
		buf := make([]byte, size+4096)
		off := 4096 - int(uintptr(unsafe.Pointer(&buf[0]))&4095)
		aligned := buf[off : off+size]
		for i := range aligned {
			aligned[i] = byte(i)
		}
		if err := os.WriteFile(path, aligned, 0o600); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT, 0)
		if err != nil {
			t.Skipf("skipped: O_DIRECT not supported on %s: %v", dir, err)
		}
		defer unix.Close(fd)
		if err := unix.Fsync(fd); err != nil {
			t.Fatal(err)
		}
		check(t, IO, func() error {
			n, _, e := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&aligned[0])), size, 0, 0, 0)
			if e != 0 {
				return e
			}
			if n != size {
				return io.ErrShortBuffer
			}
			if _, _, e := unix.RawSyscall(unix.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&aligned[0])), 1<<20); e != 0 {
				return e
			}
			if _, _, e := unix.RawSyscall(unix.SYS_FSYNC, uintptr(fd), 0, 0); e != 0 {
				return e
			}
			return nil
		})
	})
}

// Two busy loops pinned to one CPU take turns: whenever one runs the other
// waits, preempted, so their preempted time adds up to about the time both
// ran; neither ever sleeps.
func TestPreempted(t *testing.T) {
	p, _ := startProbe(t, DefaultConfig())
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("skipped: taskset not installed")
	}
	cpu := strconv.Itoa(runtime.NumCPU() - 1)
	var cmds []*exec.Cmd
	for range 2 {
		c := exec.Command("taskset", "-c", cpu, "sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	// Past start-up (exec, page faults), the loops never leave the CPU
	// voluntarily.
	time.Sleep(200 * time.Millisecond)
	snap := func() []ThreadStats {
		var out []ThreadStats
		for _, c := range cmds {
			th, ok, err := p.Thread(uint32(c.Process.Pid))
			if err != nil || !ok {
				t.Fatalf("pid %d: no totals (%v)", c.Process.Pid, err)
			}
			out = append(out, th)
		}
		return out
	}
	before := snap()
	t0 := time.Now()
	time.Sleep(time.Second)
	after := snap()
	runFor := time.Since(t0)
	var sum time.Duration
	for i, th := range after {
		d := th.Sub(before[i].Stats)
		pre := time.Duration(d.OffCPUNS[Preempted])
		t.Logf("pid %d %s: preempted %v in %d intervals, run-queue waits %d, off-CPU %v", th.TID, th.Comm, pre, d.OffCPUCount[Preempted], d.RunqCount, d.OffCPUNS)
		if th.Comm != "sh" {
			t.Errorf("pid %d: comm %q, want sh", th.TID, th.Comm)
		}
		if d.OffCPUNS[Lock] != 0 || d.OffCPUNS[Sleep] != 0 || d.OffCPUNS[IO] != 0 {
			t.Errorf("pid %d: a busy loop left the CPU voluntarily: %v", th.TID, d.OffCPUNS)
		}
		if d.RunqCount == 0 || d.RunqCount < d.OffCPUCount[Preempted]-1 {
			t.Errorf("pid %d: %d run-queue waits for %d preemptions", th.TID, d.RunqCount, d.OffCPUCount[Preempted])
		}
		sum += pre
	}
	// At every instant one of them waits; both wait while a third task runs.
	if sum < runFor*9/10 || sum > 2*runFor {
		t.Errorf("preempted time of the pair %v over %v, want between 90%% and 200%% of it", sum, runFor)
	}
}

// A map too small for the host counts what it refuses: threads not timed,
// and cgroups folded into "other", both visible as metrics. The threads map
// is the raw_tp programs' store (tp_btf keeps the state in task storage).
func TestMapFullCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxThreads, cfg.MaxCgroups = 16, 1
	p, reg := startProbe(t, cfg, kernel.TpBTF)
	// Sleepers in two cgroups of their own (the host may run everything in
	// one) waking every 10 ms: more cgroups than 1 and, with the rest of the
	// host, more threads off the CPU at once than 16.
	var cmds []*exec.Cmd
	for i := range 32 {
		c := exec.Command("sh", "-c", "while :; do sleep 0.01; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		if i < 2 {
			dir, _ := newCgroup(t)
			moveTo(t, dir, c.Process.Pid)
		}
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		time.Sleep(50 * time.Millisecond) // let the last sleep children leave the cgroups
	})
	var threads, cgroups uint64
	testutil.WaitFor(3*time.Second, func() bool {
		var err error
		threads, cgroups, err = p.MapFull()
		return err == nil && threads > 0 && cgroups > 0
	})
	if threads == 0 || cgroups == 0 {
		t.Fatalf("map full counters threads=%d cgroups=%d, want both > 0", threads, cgroups)
	}
	cgs, err := p.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	var other *CgroupStats
	for i := range cgs {
		if cgs[i].Overflow {
			other = &cgs[i]
		}
	}
	if len(cgs) != 2 || other == nil {
		t.Fatalf("%d aggregates, want the one cgroup that fit plus \"other\": %+v", len(cgs), cgs)
	}
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"threads", "cgroups"} {
		if v := m.Value("vigil_sched_map_full_total", map[string]string{"map": w}); v == 0 {
			t.Errorf("vigil_sched_map_full_total{map=%q} = 0", w)
		}
	}
	if v, ok := m.Get("vigil_sched_runqueue_latency_seconds", map[string]string{"container": "other"}); !ok || v == 0 {
		t.Errorf("no run-queue samples under container \"other\": %v", m.Series("vigil_sched_runqueue_latency_seconds"))
	}
}

// Time is charged to the cgroup of the thread that waited: a shell in a
// cgroup of its own that waits for a 300 ms sleep accrues at least that much
// sleep there, and its run-queue waits are counted there too.
func TestCgroupAttribution(t *testing.T) {
	p, reg := startProbe(t, DefaultConfig())
	dir, id := newCgroup(t)
	c := exec.Command("sh", "-c", "read x; sleep 0.3")
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	moveTo(t, dir, c.Process.Pid)
	io.WriteString(in, "go\n")
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	cgs, err := p.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	var got *CgroupStats
	for i := range cgs {
		if cgs[i].CgroupID == id && !cgs[i].Overflow {
			got = &cgs[i]
		}
	}
	if got == nil {
		t.Fatalf("no aggregate for cgroup %d (%s)", id, dir)
	}
	t.Logf("cgroup %d: off-CPU %v ns, run-queue waits %d", id, got.OffCPUNS, got.RunqCount)
	if time.Duration(got.OffCPUNS[Sleep]) < 300*time.Millisecond || got.RunqCount == 0 {
		t.Errorf("cgroup %d: sleep %v (want >= 300ms), %d run-queue waits (want > 0)", id, time.Duration(got.OffCPUNS[Sleep]), got.RunqCount)
	}
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Value("vigil_sched_offcpu_seconds_total", map[string]string{"reason": "sleep"}); v < 0.3 {
		t.Errorf("vigil_sched_offcpu_seconds_total{reason=\"sleep\"} = %v: %v", v, m.Series("vigil_sched_offcpu_seconds_total"))
	}
}

func newCgroup(t *testing.T) (string, uint64) {
	t.Helper()
	dir := filepath.Join(proc.NewCgroups("/sys/fs/cgroup", 1).Root(), fmt.Sprintf("vigil-test-sched-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating a test cgroup (needs a writable cgroup v2 hierarchy): %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

func moveTo(t *testing.T, cgroupDir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("moving pid %d to %s: %v", pid, cgroupDir, err)
	}
}

// The agent's self-metrics cover the probe like any other: programs
// attached (tp_btf here), BPF run time and map fill.
func TestSelfMetrics(t *testing.T) {
	if c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer c.Close()
	}
	p, reg := startProbe(t, DefaultConfig())
	reg.MustRegister(metrics.SelfCollector{Objects: func() []*kernel.Object { return []*kernel.Object{p.Object()} }})
	time.Sleep(200 * time.Millisecond)
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"sched_switch", "sched_wakeup", "sched_wakeup_new"} {
		if v := m.Value("vigil_probe_program_attached", map[string]string{"probe": Name, "program": prog, "hook": "tp_btf"}); v != 1 {
			t.Errorf("%s not attached through tp_btf: %v", prog, m.Series("vigil_probe_program_attached"))
		}
	}
	if v := m.Value("vigil_bpf_program_runs_total", map[string]string{"probe": Name, "program": "sched_switch"}); v == 0 {
		t.Errorf("no BPF run count for sched_switch: %v", m.Series("vigil_bpf_program_runs_total"))
	}
	if v := m.Value("vigil_bpf_map_max_entries", map[string]string{"probe": Name, "map": "cgroups"}); v != 1024 {
		t.Errorf("cgroups map capacity %v, want 1024: %v", v, m.Series("vigil_bpf_map_max_entries"))
	}
	// tp_btf keeps thread state in task storage: the raw_tp hash is not sized.
	if v := m.Value("vigil_bpf_map_max_entries", map[string]string{"probe": Name, "map": "threads"}); v != 1 {
		t.Errorf("threads map capacity %v under tp_btf, want 1", v)
	}
	if _, ok := m.Get("vigil_bpf_map_entries", map[string]string{"probe": Name, "map": "cgroups"}); !ok {
		t.Errorf("no fill for the cgroups map: %v", m.Series("vigil_bpf_map_entries"))
	}
}

// The raw_tp fallback gives the same reasons when tp_btf is ruled out.
func TestRawTPFallback(t *testing.T) {
	testutil.RequireBPF(t)
	kernel.RaiseMemlock()
	p, _ := startProbe(t, DefaultConfig(), kernel.TpBTF)
	if n := p.Object().Maps["threads"].MaxEntries(); n != DefaultConfig().MaxThreads {
		t.Errorf("threads map has %d entries under raw_tp, want %d", n, DefaultConfig().MaxThreads)
	}
	for _, st := range p.Object().Status() {
		if st.Hook != kernel.RawTP {
			t.Errorf("%s attached through %s, want raw_tp", st.Name, st.Hook)
		}
	}
	_, before, after, wall := onThread(t, p, func() error {
		var word uint32
		ts := unix.NsecToTimespec(int64(100 * time.Millisecond))
		unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&word)), 128, 0, uintptr(unsafe.Pointer(&ts)), 0, 0)
		return nil
	})
	d := after.Sub(before)
	if got := time.Duration(d.OffCPUNS[Lock]); got < 99*time.Millisecond || got > wall || d.OffCPUNS[Sleep] != 0 {
		t.Errorf("raw_tp: lock %v (wall %v), off-CPU %v", got, wall, d.OffCPUNS)
	}
}
