package process

import (
	"testing"
	"unsafe"
)

// The decoder reads fixed offsets; these must match what the BPF side writes.
func TestRecordLayout(t *testing.T) {
	var x processExecEvent
	var y processExitEvent
	var f processForkEvent
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"exec.args", unsafe.Offsetof(x.Args), execHeaderSize},
		{"exec.comm", unsafe.Offsetof(x.Comm), commOff},
		{"exec.filename", unsafe.Offsetof(x.Filename), filenameOff},
		{"exec.pid", unsafe.Offsetof(x.Pid), 8},
		{"exec.retval", unsafe.Offsetof(x.Retval), 28},
		{"exec.ts", unsafe.Offsetof(x.TsNs), 32},
		{"exec.start", unsafe.Offsetof(x.StartNs), 40},
		{"exec.cgroup", unsafe.Offsetof(x.CgroupId), 48},
		{"exit.size", unsafe.Sizeof(y), exitSize},
		{"exit.code", unsafe.Offsetof(y.ExitCode), 12},
		{"exit.start", unsafe.Offsetof(y.StartNs), 24},
		{"exit.comm", unsafe.Offsetof(y.Comm), 40},
		{"fork.size", unsafe.Sizeof(f), forkSize},
		{"fork.child", unsafe.Offsetof(f.ChildPid), 8},
		{"fork.start", unsafe.Offsetof(f.ChildStartNs), 24},
		{"fork.comm", unsafe.Offsetof(f.Comm), 40},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: offset/size %d in the BPF struct, decoder uses %d", c.name, c.got, c.want)
		}
	}
	if unsafe.Sizeof(x.Filename) != filenameBuf {
		t.Errorf("filename buffer %d, decoder uses %d", unsafe.Sizeof(x.Filename), filenameBuf)
	}
}
