package kernel_test

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/kernel/testprog"
	"github.com/vigilproject/vigil/internal/testutil"
)

// buildTarget compiles testprog/target.c with clang into dir.
func buildTarget(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang not installed: cannot build the target program")
	}
	bin := filepath.Join(t.TempDir(), "vigil-uprobe-target")
	out, err := exec.Command("clang", "-O1", "-o", bin, filepath.Join("testprog", "target.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("building target: %v\n%s", err, out)
	}
	return bin
}

func loadTestprog(t *testing.T, defs ...kernel.ProgramDef) *kernel.Object {
	return loadTestprogLater(t, nil, defs...)
}

func loadTestprogLater(t *testing.T, later []string, defs ...kernel.ProgramDef) *kernel.Object {
	t.Helper()
	testutil.RequireBPF(t)
	kernel.RaiseMemlock()
	spec, err := testprog.Spec()
	if err != nil {
		t.Fatal(err)
	}
	obj, err := kernel.Load(spec, kernel.LoadOptions{Probe: "test", Programs: defs, Later: later})
	testutil.SkipIfNotPermitted(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obj.Close() })
	return obj
}

func count(t *testing.T, m *ebpf.Map, pid int) uint64 {
	t.Helper()
	var v uint64
	if err := m.Lookup(uint32(pid), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0
		}
		t.Fatal(err)
	}
	return v
}

// runTarget runs the target to completion and returns its pid.
func runTarget(t *testing.T, bin string, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
	return cmd.Process.Pid
}

// started is a target already running (blocked on stdin) before attach.
type started struct {
	cmd *exec.Cmd
	in  *os.File
}

func startWaiting(t *testing.T, bin string, args ...string) *started {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, "wait")...)
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &started{cmd: cmd, in: w}
}

func (s *started) release(t *testing.T) *os.ProcessState {
	t.Helper()
	fmt.Fprintln(s.in, "go")
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("target: %v", err)
	}
	return s.cmd.ProcessState
}

// fileOffset is the file offset of a function, which is what an
// offset-based uprobe takes.
func fileOffset(t *testing.T, bin, symbol string) uint64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != symbol {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Memsz {
				return s.Value - p.Vaddr + p.Off
			}
		}
	}
	t.Fatalf("%s has no symbol %s", bin, symbol)
	return 0
}

// A uprobe by symbol counts exactly the calls of each process, for a
// process that was running before the attach and for processes started
// after it; a pid filter leaves other processes out.
func TestUprobeBySymbol(t *testing.T) {
	bin := buildTarget(t)
	before := startWaiting(t, bin, "calls", "5")
	obj := loadTestprog(t, kernel.ProgramDef{Name: "call", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "count_call", Binary: bin, Target: "vigil_target"},
	}})
	st := obj.Status()
	if len(st) != 1 || !st[0].Attached || st[0].Hook != kernel.Uprobe || st[0].Target != "vigil_target" || st[0].Detail != "binary "+bin {
		t.Fatalf("status %+v", st)
	}
	hits := obj.Maps["uprobe_hits"]
	before.release(t)
	if n := count(t, hits, before.cmd.Process.Pid); n != 5 {
		t.Errorf("process running before attach: %d hits, want 5", n)
	}
	for _, n := range []int{1, 7, 1000} {
		pid := runTarget(t, bin, "calls", fmt.Sprint(n))
		if got := count(t, hits, pid); got != uint64(n) {
			t.Errorf("process started after attach, %d calls: %d hits", n, got)
		}
	}

	// Filtered to one process: only that one is counted.
	w := startWaiting(t, bin, "calls", "3")
	filtered := loadTestprog(t, kernel.ProgramDef{Name: "call", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "count_call", Binary: bin, Target: "vigil_target", PID: w.cmd.Process.Pid},
	}})
	w.release(t)
	other := runTarget(t, bin, "calls", "4")
	fhits := filtered.Maps["uprobe_hits"]
	if a, b := count(t, fhits, w.cmd.Process.Pid), count(t, fhits, other); a != 3 || b != 0 {
		t.Errorf("pid filter: %d hits for the filtered pid (want 3), %d for another (want 0)", a, b)
	}
}

// An offset-based uprobe (no symbol lookup, as for stripped binaries) fires
// like the symbol one.
func TestUprobeByOffset(t *testing.T) {
	bin := buildTarget(t)
	off := fileOffset(t, bin, "vigil_target")
	obj := loadTestprog(t, kernel.ProgramDef{Name: "call", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "count_call", Binary: bin, Offset: off},
	}})
	pid := runTarget(t, bin, "calls", "11")
	if n := count(t, obj.Maps["uprobe_hits"], pid); n != 11 {
		t.Errorf("offset %#x: %d hits, want 11", off, n)
	}
}

func TestUprobeErrors(t *testing.T) {
	bin := buildTarget(t)
	testutil.RequireBPF(t)
	spec, err := testprog.Spec()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		hook kernel.Hook
		want string
	}{
		{kernel.Hook{Binary: bin, Target: "no_such_function"}, fmt.Sprintf(`uprobe: binary %s has no symbol "no_such_function"`, bin)},
		{kernel.Hook{Binary: "/no/such/binary", Target: "main"}, "uprobe: binary /no/such/binary does not exist"},
		{kernel.Hook{Binary: bin}, fmt.Sprintf("uprobe %s: neither a symbol nor an offset given", bin)},
	} {
		c.hook.Kind, c.hook.Program = kernel.Uprobe, "count_call"
		_, err := kernel.Load(spec, kernel.LoadOptions{Probe: "test", Programs: []kernel.ProgramDef{{Name: "call", Required: true, Hooks: []kernel.Hook{c.hook}}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.hook, err, c.want)
		}
	}
	if n := len(ownPrograms(t)); n != 0 {
		t.Errorf("failed loads left %d programs held", n)
	}
}

// A UprobeSet attaches once per file (a second path to the same inode is
// no new attachment), counts every binary's calls, refuses binaries beyond
// its bound and ones without the symbol (counted by reason), lists each
// attachment in Status, and detaches everything on Close.
func TestUprobeSet(t *testing.T) {
	bin := buildTarget(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "same-inode")
	if err := os.Link(bin, link); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "copy")
	third := filepath.Join(dir, "third")
	for _, p := range []string{cp, third} {
		if err := testutil.CopyFile(bin, p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := loadTestprog(t).NewUprobeSet(kernel.UprobeSetOptions{Program: "count_call", Symbol: "vigil_target"}); err == nil ||
		!strings.Contains(err.Error(), `program "count_call" was not kept for loading after Load (LoadOptions.Later)`) {
		t.Errorf("uprobe set of a program not kept: %v", err)
	}
	obj := loadTestprogLater(t, []string{"count_call"})
	set, err := obj.NewUprobeSet(kernel.UprobeSetOptions{Name: "call", Program: "count_call", Symbol: "vigil_target", MaxBinaries: 2})
	if err != nil {
		t.Fatal(err)
	}
	add := func(p string, want bool, wantErr string) {
		t.Helper()
		ok, err := set.Add(p)
		if ok != want || (wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("Add(%s) = %v, %v; want %v, %q", p, ok, err, want, wantErr)
		}
	}
	add(bin, true, "")
	add(link, false, "")
	add("/bin/true", false, `has no symbol "vigil_target"`)
	add("/bin/true", false, `has no symbol "vigil_target"`) // remembered, not counted again
	add(cp, true, "")
	add(third, false, "the call set is full (2 binaries)")
	if set.Len() != 2 {
		t.Errorf("Len %d, want 2", set.Len())
	}
	st := obj.Status()
	if len(st) != 2 || st[0].Hook != kernel.Uprobe || !strings.Contains(st[0].Detail, "binary "+bin) || !strings.Contains(st[1].Detail, "binary "+cp) {
		t.Errorf("status %+v", st)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Value("vigil_uprobe_binaries", map[string]string{"probe": "test", "program": "call"}); got != 2 {
		t.Errorf("vigil_uprobe_binaries %v, want 2", got)
	}
	for reason, want := range map[string]float64{"limit": 1, "error": 1} {
		if got := m.Value("vigil_uprobe_attach_failures_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("failures{reason=%s} %v, want %v", reason, got, want)
		}
	}

	hits := obj.Maps["uprobe_hits"]
	for p, n := range map[string]int{bin: 3, link: 4, cp: 5, third: 6} {
		pid := runTarget(t, p, "calls", fmt.Sprint(n))
		want := uint64(n)
		if p == third {
			want = 0
		}
		if got := count(t, hits, pid); got != want {
			t.Errorf("%s: %d hits, want %d", p, got, want)
		}
	}

	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	if len(obj.Status()) != 0 {
		t.Errorf("status after Close: %+v", obj.Status())
	}
	pid := runTarget(t, bin, "calls", "2")
	if got := count(t, hits, pid); got != 0 {
		t.Errorf("%d hits after Close", got)
	}
}

// perfSamples runs a spinner for 1 s of CPU time under a 99 Hz sampler and
// returns its samples and CPU seconds.
func spinSampled(t *testing.T, obj *kernel.Object, s *started) (samples uint64, cpu float64) {
	t.Helper()
	ps := s.release(t)
	cpu = (ps.UserTime() + ps.SystemTime()).Seconds()
	return count(t, obj.Maps["samples"], s.cmd.Process.Pid), cpu
}

func checkRate(t *testing.T, what string, samples uint64, cpu float64) {
	t.Helper()
	want := 99 * cpu
	t.Logf("%s: %d samples over %.3f s of CPU (%.1f/s)", what, samples, cpu, float64(samples)/cpu)
	if cpu < 0.8 || float64(samples) < 0.8*want || float64(samples) > 1.2*want {
		t.Errorf("%s: %d samples over %.3f s of CPU, want 99/s (%.0f) ±20%%", what, samples, cpu, want)
	}
}

// 99 Hz CPU-clock sampling on every CPU gives a busy process about 99
// samples per second of its CPU time; with a pid filter the process is
// sampled alike and others are not.
func TestPerfEventSampling(t *testing.T) {
	bin := buildTarget(t)
	s := startWaiting(t, bin, "spin", "1000")
	obj := loadTestprog(t, kernel.ProgramDef{Name: "sample", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.PerfEvent, Program: "count_sample", Sampling: kernel.Sampling{Frequency: 99}},
	}})
	cpus, err := kernel.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if st := obj.Status(); len(st) != 1 || st[0].Hook != kernel.PerfEvent || !strings.HasPrefix(st[0].Detail, "cpus ") ||
		strings.Count(st[0].Detail, ",")+1 != len(cpus) {
		t.Errorf("status %+v (online cpus %v)", st, cpus)
	}
	n, cpu := spinSampled(t, obj, s)
	checkRate(t, "all processes", n, cpu)

	s = startWaiting(t, bin, "spin", "1000")
	other := startWaiting(t, bin, "spin", "200")
	filtered := loadTestprog(t, kernel.ProgramDef{Name: "sample", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.PerfEvent, Program: "count_sample", PID: s.cmd.Process.Pid, Sampling: kernel.Sampling{Frequency: 99}},
	}})
	other.release(t)
	n, cpu = spinSampled(t, filtered, s)
	checkRate(t, "pid filter", n, cpu)
	if o := count(t, filtered.Maps["samples"], other.cmd.Process.Pid); o != 0 {
		t.Errorf("pid filter: another process got %d samples", o)
	}
}

// CPUs that are absent or offline are skipped, named in the status; only
// when no CPU can be sampled does the attach fail.
func TestPerfEventMissingCPUs(t *testing.T) {
	online, err := kernel.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	def := kernel.ProgramDef{Name: "sample", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.PerfEvent, Program: "count_sample", Sampling: kernel.Sampling{Period: 10_000_000}},
	}}
	restore := kernel.SetCPUList(func() ([]int, error) { return append([]int{4095}, online...), nil })
	defer restore()
	obj := loadTestprog(t, def)
	st := obj.Status()
	if len(st) != 1 || !st[0].Attached || !strings.Contains(st[0].Detail, "skipped cpu 4095: perf_event_open") {
		t.Errorf("status %+v", st)
	}
	obj.Close()

	kernel.SetCPUList(func() ([]int, error) { return []int{4095, 4094}, nil })
	spec, _ := testprog.Spec()
	_, err = kernel.Load(spec, kernel.LoadOptions{Probe: "test", Programs: []kernel.ProgramDef{def}})
	if err == nil || !strings.Contains(err.Error(), "perf_event: no CPU could be sampled") {
		t.Errorf("no CPU: %v", err)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]string{"0": "[0]", "0-3,6": "[0 1 2 3 6]", "1,3-4": "[1 3 4]", "": "[]"} {
		got, err := kernel.ParseCPUList(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", "3-1", "1-", "-1"} {
		if _, err := kernel.ParseCPUList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// With producers following bpf/include/vigil_ring.h, the shared ring timer
// stops once the rings are quiet (no periodic wake-up at all when idle), a
// record after a quiet spell wakes the reader at once, and records held
// back during a burst still arrive within the poll interval.
func TestRingGoesColdWhenQuiet(t *testing.T) {
	bin := buildTarget(t)
	obj := loadTestprog(t, kernel.ProgramDef{Name: "emit", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "emit", Binary: bin, Target: "vigil_target"},
	}})
	var mu sync.Mutex
	seen := map[uint32]int{}
	arrived := map[uint32]time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- obj.ReadRing(ctx, func(b []byte) {
			mu.Lock()
			pid := uint32(binary.LittleEndian.Uint64(b))
			seen[pid]++
			arrived[pid] = time.Now()
			mu.Unlock()
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	quiet := func() {
		t.Helper()
		if !testutil.WaitFor(kernel.RingColdAfter+2*time.Second, func() bool {
			n := kernel.RingSweeps()
			time.Sleep(3 * kernel.RingPollInterval)
			return kernel.RingSweeps() == n
		}) {
			t.Fatal("the ring sweep kept ticking although the ring is quiet")
		}
	}
	quiet()
	n0 := kernel.RingSweeps()
	time.Sleep(time.Second)
	if n := kernel.RingSweeps() - n0; n != 0 {
		t.Errorf("%d sweeps in a quiet second, want 0", n)
	}

	// After the quiet spell the first record forces a wakeup.
	pid := runTarget(t, bin, "calls", "1")
	end := time.Now()
	if !testutil.WaitFor(2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return seen[uint32(pid)] == 1 }) {
		t.Fatal("the record after a quiet spell did not arrive")
	}
	mu.Lock()
	lat := arrived[uint32(pid)].Sub(end)
	mu.Unlock()
	if lat > kernel.RingPollInterval {
		t.Errorf("first record after a quiet spell took %v, want a prompt wakeup", lat)
	}

	// A burst: records after the first are held back (no wakeup) and must
	// be collected by the sweep within the interval.
	var pids []int
	for i := 0; i < 5; i++ {
		pids = append(pids, runTarget(t, bin, "calls", "3"))
	}
	last := time.Now()
	if !testutil.WaitFor(2*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pids {
			if seen[uint32(p)] != 3 {
				return false
			}
		}
		return true
	}) {
		mu.Lock()
		t.Fatalf("burst not delivered: %v", seen)
	}
	mu.Lock()
	lat = arrived[uint32(pids[len(pids)-1])].Sub(last)
	mu.Unlock()
	if lat > kernel.RingPollInterval+50*time.Millisecond {
		t.Errorf("held-back records took %v after the burst", lat)
	}
	quiet()
}

// Go binaries: a uprobe on a Go function (by its symbol, main.vigilTarget)
// counts every call; a binary built with -ldflags=-s has no symbol table and
// the error says so and names the binary.
func TestUprobeGoBinary(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "gotarget")
	stripped := filepath.Join(dir, "gotarget-stripped")
	for out, flags := range map[string]string{bin: "", stripped: "-s -w"} {
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		cmd := exec.Command(gobin, "build", "-ldflags="+flags, "-o", out, "./testprog/gotarget")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
	}
	obj := loadTestprog(t, kernel.ProgramDef{Name: "call", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "count_call", Binary: bin, Target: "main.vigilTarget"},
	}})
	pid := runTarget(t, bin, "9")
	if n := count(t, obj.Maps["uprobe_hits"], pid); n != 9 {
		t.Errorf("Go function: %d hits, want 9", n)
	}
	spec, err := testprog.Spec()
	if err != nil {
		t.Fatal(err)
	}
	_, err = kernel.Load(spec, kernel.LoadOptions{Probe: "test", Programs: []kernel.ProgramDef{{Name: "call", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "count_call", Binary: stripped, Target: "main.vigilTarget"},
	}}}})
	if want := fmt.Sprintf(`uprobe: binary %s has no symbol "main.vigilTarget"`, stripped); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("stripped Go binary: %v, want %q", err, want)
	}
}

// bigRingMappings counts this process's BPF map mappings of at least
// bytes, that is, mapped ring-buffer data areas of that size.
func bigRingMappings(t *testing.T, bytes uint64) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "bpf-map") {
			continue
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && hi-lo >= bytes {
			n++
		}
	}
	return n
}

// A ring buffer's data pages are mapped only once a record arrives, so an
// unused ring costs no resident memory.
func TestRingDataMappedOnFirstRecord(t *testing.T) {
	bin := buildTarget(t)
	obj := loadTestprog(t, kernel.ProgramDef{Name: "emit", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.Uprobe, Program: "emit", Binary: bin, Target: "vigil_target"},
	}})
	_, size, _ := obj.RingFill()
	if size != 0 {
		t.Fatalf("RingFill reports a reader before ReadRing: size %d", size)
	}
	got := make(chan uint64, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- obj.ReadRing(ctx, func(b []byte) { got <- binary.LittleEndian.Uint64(b) })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if !testutil.WaitFor(5*time.Second, func() bool { _, _, ok := obj.RingFill(); return ok }) {
		t.Fatal("reader did not start")
	}
	const ring = 1 << 16
	time.Sleep(100 * time.Millisecond)
	if n := bigRingMappings(t, 2*ring); n != 0 {
		t.Errorf("%d ring data mappings before the first record, want 0", n)
	}
	pid := runTarget(t, bin, "calls", "1")
	select {
	case p := <-got:
		if p != uint64(pid) {
			t.Errorf("record from pid %d, want %d", p, pid)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("record did not arrive")
	}
	if n := bigRingMappings(t, 2*ring); n != 1 {
		t.Errorf("%d ring data mappings after the first record, want 1", n)
	}
}

// cgroup_skb through the loader: an egress program attached to a cgroup v2
// directory counts exactly the packets its processes send; a directory
// that is not cgroup v2 is a clear error.
func TestCgroupSKB(t *testing.T) {
	testutil.RequireBPF(t)
	root, err := kernel.Cgroup2Root("")
	if err != nil {
		t.Skipf("no cgroup v2 mount: %v", err)
	}
	dir, err := os.MkdirTemp(root, "vigil-kernel-test-")
	if err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	defer os.Remove(dir)
	obj := loadTestprog(t, kernel.ProgramDef{Name: "egress", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.CgroupSKB, Program: "count_egress", Target: dir},
	}})
	if st := obj.Status(); len(st) != 1 || !st[0].Attached || st[0].Hook != kernel.CgroupSKB || st[0].Target != dir {
		t.Fatalf("status %+v", st)
	}
	// A shell joins the cgroup, then sends 25 UDP datagrams to a closed
	// loopback port (nothing answers, so nothing else leaves the cgroup).
	port := strings.TrimPrefix(testutil.FreeAddr(t), "127.0.0.1:")
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(25):
    s.sendto(b"x", ("127.0.0.1", int(sys.argv[1])))
' "$2"`, "sh", dir, port)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sender: %v\n%s", err, out)
	}
	var n uint64
	if err := obj.Maps["egress_packets"].Lookup(uint32(0), &n); err != nil {
		t.Fatal(err)
	}
	if n != 25 {
		t.Errorf("%d packets counted, want 25", n)
	}

	spec, _ := testprog.Spec()
	_, err = kernel.Load(spec, kernel.LoadOptions{Probe: "test", Programs: []kernel.ProgramDef{{Name: "egress", Required: true, Hooks: []kernel.Hook{
		{Kind: kernel.CgroupSKB, Program: "count_egress", Target: "/tmp"},
	}}}})
	if err == nil || !strings.Contains(err.Error(), "cgroup_root /tmp is not a cgroup v2 mount") {
		t.Errorf("non-cgroup directory: %v", err)
	}
}

// A UprobeSet with Return runs its program as the function returns (once
// per call in a C binary) and refuses a Go binary, stripped or not, with an
// error that names it and says why.
func TestUprobeSetReturn(t *testing.T) {
	bin := buildTarget(t)
	dir := t.TempDir()
	gobins := []string{filepath.Join(dir, "gotarget"), filepath.Join(dir, "gotarget-stripped")}
	for i, flags := range []string{"", "-s -w"} {
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		cmd := exec.Command(gobin, "build", "-ldflags="+flags, "-o", gobins[i], "./testprog/gotarget")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
	}
	for _, p := range append([]string{bin}, gobins...) {
		isGo, err := kernel.IsGoBinary(p)
		if err != nil || isGo != (p != bin) {
			t.Errorf("IsGoBinary(%s) = %v, %v", p, isGo, err)
		}
	}
	obj := loadTestprogLater(t, []string{"count_call"})
	set, err := obj.NewUprobeSet(kernel.UprobeSetOptions{Name: "ret", Program: "count_call", Symbol: "vigil_target", Return: true})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := set.Add(bin); !ok || err != nil {
		t.Fatalf("Add(%s) = %v, %v", bin, ok, err)
	}
	if st := obj.Status(); len(st) != 1 || !strings.HasSuffix(st[0].Detail, ", on return") {
		t.Errorf("status %+v", st)
	}
	pid := runTarget(t, bin, "calls", "13")
	if n := count(t, obj.Maps["uprobe_hits"], pid); n != 13 {
		t.Errorf("uretprobe: %d hits, want 13", n)
	}
	goSet, err := obj.NewUprobeSet(kernel.UprobeSetOptions{Name: "goret", Program: "count_call", Symbol: "main.vigilTarget", Return: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range gobins {
		ok, err := goSet.Add(p)
		want := fmt.Sprintf("uretprobe %s:main.vigilTarget refused: it is a Go binary", p)
		if ok || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Add(%s) = %v, %v; want %q", p, ok, err, want)
		}
	}
	if goSet.Len() != 0 {
		t.Errorf("Go binaries attached: %d", goSet.Len())
	}
	pid = runTarget(t, gobins[0], "5")
	if n := count(t, obj.Maps["uprobe_hits"], pid); n != 0 {
		t.Errorf("refused Go binary counted %d calls", n)
	}
}
