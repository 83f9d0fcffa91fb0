package open

import (
	"testing"
	"unsafe"
)

// The decoder reads fixed offsets; these must match what the BPF side writes.
func TestRecordLayout(t *testing.T) {
	var x openOpenEvent
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"path_len", unsafe.Offsetof(x.PathLen), 4},
		{"dir_len", unsafe.Offsetof(x.DirLen), 6},
		{"pid", unsafe.Offsetof(x.Pid), 8},
		{"tid", unsafe.Offsetof(x.Tid), 12},
		{"uid", unsafe.Offsetof(x.Uid), 16},
		{"ret", unsafe.Offsetof(x.Ret), 20},
		{"dirfd", unsafe.Offsetof(x.Dirfd), 24},
		{"mode", unsafe.Offsetof(x.Mode), 28},
		{"flags", unsafe.Offsetof(x.Flags), 32},
		{"ts", unsafe.Offsetof(x.TsNs), 40},
		{"cgroup", unsafe.Offsetof(x.CgroupId), 48},
		{"comm", unsafe.Offsetof(x.Comm), commOff},
		{"path", unsafe.Offsetof(x.Path), pathOff},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: offset %d in the BPF struct, decoder uses %d", c.name, c.got, c.want)
		}
	}
	if unsafe.Sizeof(x.Path) != 2*pathBuf {
		t.Errorf("path buffer %d, decoder assumes %d", unsafe.Sizeof(x.Path), 2*pathBuf)
	}
	var k openCountKey
	if unsafe.Sizeof(k) != 16 || unsafe.Offsetof(k.Err) != 8 {
		t.Errorf("count_key: size %d, err at %d; collector assumes 16 and 8", unsafe.Sizeof(k), unsafe.Offsetof(k.Err))
	}
}
