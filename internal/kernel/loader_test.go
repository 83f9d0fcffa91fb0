package kernel_test

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/testutil"
)

// testSpec is a minimal probe object built in the test: an "events" ring
// buffer, the "dropped" counter, and a program that writes the tgid of
// every exec into the ring buffer with BPF_RB_NO_WAKEUP, so only the
// reader's poll interval delivers it. Attachable as raw_tp only.
func testSpec(ringSize uint32) *ebpf.CollectionSpec {
	insns := asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Imm(asm.R3, 8),
		asm.Mov.Imm(asm.R4, 1), // BPF_RB_NO_WAKEUP
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			"events":  {Name: "events", Type: ebpf.RingBuf, MaxEntries: ringSize},
			"dropped": {Name: "dropped", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"raw_tp_exec": {Name: "raw_tp_exec", Type: ebpf.RawTracepoint, License: "GPL", Instructions: insns},
		},
	}
}

func ownPrograms(t *testing.T) map[uint32]bool {
	t.Helper()
	ids, err := testutil.ProgramIDsOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// The loader skips candidates that cannot work (a program missing from the
// object, a disabled kind), keeps the first that attaches, reports optional
// programs it could not attach, and fails a required one leaving nothing.
func TestLoadFallbackAndSkip(t *testing.T) {
	testutil.RequireBPF(t)
	kernel.RaiseMemlock()
	if n := len(ownPrograms(t)); n != 0 {
		t.Fatalf("test process holds %d BPF programs before the test", n)
	}
	defs := []kernel.ProgramDef{
		{Name: "exec", Required: true, Hooks: []kernel.Hook{
			{Kind: kernel.TpBTF, Program: "tp_btf_exec", Target: "sched_process_exec"}, // not in the object
			{Kind: kernel.Fentry, Program: "raw_tp_exec", Target: "x"},                 // disabled below
			{Kind: kernel.RawTP, Program: "raw_tp_exec", Target: "sched_process_exec"},
		}},
		{Name: "optional", Hooks: []kernel.Hook{{Kind: kernel.RawTP, Program: "raw_tp_exec", Target: "no_such_tracepoint_vigil"}}},
	}
	obj, err := kernel.Load(testSpec(4096), kernel.LoadOptions{Probe: "test", Programs: defs, Disabled: []kernel.HookKind{kernel.Fentry}})
	testutil.SkipIfNotPermitted(t, err)
	st := obj.Status()
	if len(st) != 2 {
		t.Fatalf("status %+v", st)
	}
	if !st[0].Attached || st[0].Hook != kernel.RawTP || len(st[0].Tried) != 2 ||
		!strings.Contains(st[0].Tried[0], `no program "tp_btf_exec"`) || !strings.Contains(st[0].Tried[1], "disabled by configuration") {
		t.Errorf("exec: %+v", st[0])
	}
	if st[1].Attached || len(st[1].Tried) != 1 || len(obj.Skipped) != 1 {
		t.Errorf("optional: %+v", st[1])
	}
	if n := len(ownPrograms(t)); n != 1 {
		t.Errorf("holding %d programs, want the 1 attached", n)
	}
	if err := obj.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(ownPrograms(t)); n != 0 {
		t.Errorf("holding %d programs after Close", n)
	}

	defs[1].Required = true
	_, err = kernel.Load(testSpec(4096), kernel.LoadOptions{Probe: "test", Programs: defs})
	if err == nil || !strings.Contains(err.Error(), "test: required program optional could not attach") {
		t.Errorf("required program that cannot attach: %v", err)
	}
	if n := len(ownPrograms(t)); n != 0 {
		t.Errorf("a failed Load left %d programs held", n)
	}
}

func TestLoadBadOptions(t *testing.T) {
	testutil.RequireBPF(t)
	if _, err := kernel.Load(testSpec(4096), kernel.LoadOptions{Probe: "test", Constants: map[string]any{"max_x": uint32(1)}}); err == nil ||
		!strings.Contains(err.Error(), `test: BPF object has no knob "max_x"`) {
		t.Errorf("unknown knob: %v", err)
	}
	if _, err := kernel.Load(testSpec(4096), kernel.LoadOptions{Probe: "test", MapSizes: map[string]uint32{"evnts": 4096}}); err == nil ||
		!strings.Contains(err.Error(), `test: BPF object has no map "evnts"`) {
		t.Errorf("unknown map: %v", err)
	}
	if _, err := kernel.Load(testSpec(4096), kernel.LoadOptions{Probe: "test", MapSizes: map[string]uint32{"events": 5000}}); err == nil ||
		!strings.Contains(err.Error(), "test: creating BPF maps") {
		t.Errorf("ring buffer size not a power of two: %v", err)
	}
}

// ReadRing delivers every record exactly once, although the producer never
// wakes it (records are collected on the poll interval), and returns
// promptly on cancel.
func TestReadRing(t *testing.T) {
	testutil.RequireBPF(t)
	kernel.RaiseMemlock()
	obj, err := kernel.Load(testSpec(1<<16), kernel.LoadOptions{Probe: "test", Programs: []kernel.ProgramDef{
		{Name: "exec", Required: true, Hooks: []kernel.Hook{{Kind: kernel.RawTP, Program: "raw_tp_exec", Target: "sched_process_exec"}}},
	}})
	testutil.SkipIfNotPermitted(t, err)
	defer obj.Close()

	var mu sync.Mutex
	seen := map[uint32]int{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- obj.ReadRing(ctx, func(b []byte) {
			mu.Lock()
			seen[uint32(binary.LittleEndian.Uint64(b))]++
			mu.Unlock()
		})
	}()
	if !testutil.WaitFor(5*time.Second, func() bool { _, _, ok := obj.RingFill(); return ok }) {
		t.Fatal("reader did not open the ring buffer")
	}
	var pids []uint32
	for i := 0; i < 20; i++ {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	if !testutil.WaitFor(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pids {
			if seen[p] == 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("not every exec arrived")
	}
	mu.Lock()
	for _, p := range pids {
		if seen[p] != 1 {
			t.Errorf("pid %d seen %d times", p, seen[p])
		}
	}
	mu.Unlock()
	if obj.Received.Load() < uint64(len(pids)) {
		t.Errorf("Received %d < %d", obj.Received.Load(), len(pids))
	}
	if d, err := obj.Dropped(); err != nil || d != 0 {
		t.Errorf("Dropped %d, %v", d, err)
	}
	used, size, ok := obj.RingFill()
	if !ok || size != 1<<16 || used < 0 || used > size {
		t.Errorf("RingFill %d/%d %v", used, size, ok)
	}

	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ReadRing: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadRing did not return after cancel")
	}
	if d := time.Since(t0); d > kernel.RingPollInterval+500*time.Millisecond {
		t.Errorf("ReadRing took %v to stop", d)
	}
	if _, _, ok := obj.RingFill(); ok {
		t.Error("RingFill still reports a reader after ReadRing returned")
	}
}
