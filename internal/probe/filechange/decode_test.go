package filechange

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilproject/vigil/internal/probe"
)

// record builds a ring buffer record as filechange.bpf.c writes it.
func record(h filechangeFcHead, p1, p2 string) []byte {
	h.Kind = kindFileChange
	h.PathLen, h.Path2Len = uint16(len(p1)), uint16(len(p2))
	h.Proc = filechangeVigilProc{Pid: 4242, Tid: 4242, Ppid: 1, StartNs: 5e9, CgroupId: 77}
	for i, c := range "mv" {
		h.Proc.Comm[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &h); err != nil {
		panic(err)
	}
	buf.WriteString(p1)
	buf.WriteByte(0)
	buf.WriteString(p2)
	buf.WriteByte(0)
	return buf.Bytes()
}

func TestRecordLayout(t *testing.T) {
	if err := probe.CheckKernelProc(reflect.TypeOf(filechangeVigilProc{})); err != nil {
		t.Error(err)
	}
	var e filechangeFcEvent
	if off := unsafe.Offsetof(e.Buf); off != uintptr(pathOff) {
		t.Errorf("paths at offset %d, fixed part is %d bytes", off, pathOff)
	}
	if unsafe.Sizeof(e.Buf) != 3*pathBuf {
		t.Errorf("path area %d bytes, decoder assumes %d", unsafe.Sizeof(e.Buf), 3*pathBuf)
	}
	var k filechangeVigilPathKey
	if len(k.Data) != maxKeyPrefix+1 {
		t.Errorf("filter key holds %d bytes, planWatch assumes %d", len(k.Data), maxKeyPrefix+1)
	}
}

func TestDecodeRename(t *testing.T) {
	r, err := decodeChange(record(filechangeFcHead{Op: 3, Syscall: 6, PathState: stateResolved, Path2State: stateAbsolute, Ret: -2, Dirfd: -100, Dirfd2: 5, Flags: 2, Watched: 3}, "/etc/a", "/etc/b"))
	if err != nil {
		t.Fatal(err)
	}
	if r.op != OpRename || r.syscall != "renameat2" || r.path1 != "/etc/a" || r.path2 != "/etc/b" || r.state1 != stateResolved || r.state2 != stateAbsolute ||
		r.ret != -2 || r.dirfd2 != 5 || r.flags != 2 || r.watched != 3 || r.proc.PID != 4242 {
		t.Errorf("decoded %+v", r)
	}
	p := New(DefaultConfig())
	e := p.eventOf(r)
	if e.Path != "/etc/a" || e.NewPath != "/etc/b" || e.NewPathStatus != PathAbsolute || e.Error != "ENOENT" || e.NewUID != -1 || e.Mode != 0 {
		t.Errorf("event %+v", e)
	}
}

func TestDecodeSymlinkAndChown(t *testing.T) {
	r, err := decodeChange(record(filechangeFcHead{Op: 8, Syscall: 19, PathState: stateRaw, Path2State: stateResolved, Dirfd: -100, Dirfd2: -100}, "../x", "/etc/cron.d/job"))
	if err != nil {
		t.Fatal(err)
	}
	e := New(DefaultConfig()).eventOf(r)
	if e.Op != OpSymlink || e.Path != "/etc/cron.d/job" || e.PathStatus != PathResolved || e.Target != "../x" || e.NewPath != "" {
		t.Errorf("symlink event %+v", e)
	}
	if got := r.watchedPaths(); len(got) != 1 || got[0] != "/etc/cron.d/job" {
		t.Errorf("symlink watched paths %q: the target is not a path the call changes", got)
	}
	r, err = decodeChange(record(filechangeFcHead{Op: 6, Syscall: 14, PathState: stateFD, Path2State: stateNone, Uid: 0, Gid: ^uint32(0), Mode: 0o777}, "/root/.ssh/authorized_keys", ""))
	if err != nil {
		t.Fatal(err)
	}
	e = New(DefaultConfig()).eventOf(r)
	if e.Op != OpChown || e.NewUID != 0 || e.NewGID != -1 || e.Mode != 0 || e.PathStatus != PathFD || e.NewPathStatus != "" {
		t.Errorf("chown event %+v", e)
	}
}

// Whatever the bytes, the decoder returns an error rather than panicking or
// reading past the record.
func TestDecodeRejectsBadRecords(t *testing.T) {
	good := record(filechangeFcHead{Op: 1, Syscall: 1, Path2State: stateNone}, "/etc/x", "")
	cases := map[string][]byte{
		"empty":     nil,
		"short":     good[:pathOff],
		"bad kind":  append([]byte{9}, good[1:]...),
		"bad op":    record(filechangeFcHead{Op: 99, Syscall: 1}, "/x", ""),
		"bad sc":    record(filechangeFcHead{Op: 1, Syscall: 99}, "/x", ""),
		"bad state": record(filechangeFcHead{Op: 1, Syscall: 1, PathState: 9}, "/x", ""),
		"lengths":   good[:len(good)-2],
	}
	for name, b := range cases {
		if _, err := decodeChange(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	for i := range len(good) {
		_, _ = decodeChange(good[:i])
	}
}

func TestPlanWatch(t *testing.T) {
	long := "/" + strings.Repeat("a", 300) + "/"
	pl := planWatch([]string{"/etc/", "/etc/cron.d/", "/home/", "/etc/", long})
	if got := strings.Join(pl.entries, " "); got != long[:maxKeyPrefix]+" /etc/ /home/" {
		t.Errorf("entries %q", got)
	}
	if pl.folded != 1 || pl.exact[0] || !pl.exact[1] {
		t.Errorf("folded %d exact %v; the long prefix is held cut", pl.folded, pl.exact)
	}
	if w, ok := pl.admits(1, "/"+strings.Repeat("a", 300)+"/x"); !ok || w != long {
		t.Errorf("path under the long prefix: %q %v", w, ok)
	}
	if _, ok := pl.admits(1, "/"+strings.Repeat("a", 301)); ok {
		t.Error("a path under the cut prefix only was admitted")
	}
	if w, ok := pl.admits(2, "/etc"); !ok || w != "/etc/" {
		t.Errorf("/etc itself: %q %v", w, ok)
	}
	if _, ok := pl.admits(9); ok {
		t.Error("an entry the plan does not have was admitted")
	}

	var many []string
	for i := range 3 * MaxWatched {
		many = append(many, "/srv/"+strings.Repeat("d", i%7)+"/"+string(rune('a'+i%26))+"/"+strings.Repeat("x", i)+"/")
	}
	pl = planWatch(many)
	if len(pl.entries) > MaxWatched || len(pl.entries) == 0 {
		t.Fatalf("%d entries for %d prefixes", len(pl.entries), len(many))
	}
	for _, c := range many {
		covered := false
		for _, e := range pl.entries {
			covered = covered || strings.HasPrefix(c, e)
		}
		if !covered {
			t.Fatalf("%q lost by folding", c)
		}
	}
	if !watchedBy("/etc", "/etc/") || watchedBy("/etcx", "/etc/") || !watchedBy("/etc/x", "/etc/") || watchedBy("/et", "/etc/") {
		t.Error("watchedBy does not follow the kernel's path+'/' rule")
	}
}

// The DETAIL column of `vigil trace file_change`.
func TestDetailColumn(t *testing.T) {
	for _, c := range []struct {
		e    FileChange
		want string
	}{
		{FileChange{Op: OpChmod, Mode: 0o4755}, "04755"},
		{FileChange{Op: OpMkdir, Mode: 0o700}, "0700"},
		{FileChange{Op: OpChown, NewUID: 0, NewGID: -1}, "0:-"},
		{FileChange{Op: OpTruncate, Length: 3}, "3"},
		{FileChange{Op: OpOpenWrite, Flags: 0o1101, Mode: 0o600}, "01101 0600"},
		{FileChange{Op: OpOpenWrite, Flags: 0o2001}, "02001"},
		{FileChange{Op: OpUnlink}, ""},
	} {
		if got := detail(&c.e); got != c.want {
			t.Errorf("%s: detail %q, want %q", c.e.Op, got, c.want)
		}
	}
}
