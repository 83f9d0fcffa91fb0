package filechange

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/testutil"
)

const sysFchmodat2 = 452 // not in x/sys/unix yet

// want is the event one child call must produce.
type want struct {
	op, syscall   string
	path, status  string
	newPath       string
	newStatus     string
	target        string
	mode          uint32
	uid, gid      int64
	length        int64
	flags         uint32
	dirfdFrom     int // argument index of an fd the child opened, -1: dirfd
	dirfd         int32
	errno         unix.Errno
	pathTruncated bool
}

// Every syscall the probe hooks, in direct, at- and fd-based forms, with
// relative and absolute paths and failing calls: each produces exactly one
// event with the exact absolute paths, mode, owner, length, flags and errno.
func TestKernelFileChanges(t *testing.T) {
	testutil.RequireBPF(t)
	dir := realTempDir(t)
	sub := filepath.Join(dir, "sub")
	mustMkdir(t, sub)
	for _, f := range []string{"u1", "sub/u2", "r1", "sub/r2", "r3", "r4", "t1", "t2", "m1", "m2", "sub/m3", "m4",
		"o1", "o2", "sub/o3", "l1", "sub/ftr"} {
		mustWrite(t, filepath.Join(dir, f))
	}
	for _, d := range []string{"rd1", "rd2"} {
		mustMkdir(t, filepath.Join(dir, d))
	}
	if err := unix.Symlink("o1", filepath.Join(dir, "lnk")); err != nil {
		t.Fatal(err)
	}
	S := func(kv ...any) map[int]string {
		m := map[int]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(int)] = kv[i+1].(string)
		}
		return m
	}
	cwd := int64(unix.AT_FDCWD)
	subFD := map[int]string{0: sub}
	isDir := map[int]bool{0: true}
	calls := []childCall{
		{Name: "unlink_abs", NR: unix.SYS_UNLINK, Str: S(0, dir+"/u1"), Cwd: dir},
		{Name: "unlinkat_dirfd", NR: unix.SYS_UNLINKAT, Str: S(1, "u2"), Open: subFD, Dir: isDir},
		{Name: "unlinkat_rmdir", NR: unix.SYS_UNLINKAT, Args: [6]int64{cwd, 0, unix.AT_REMOVEDIR}, Str: S(1, "rd1")},
		{Name: "rmdir_abs", NR: unix.SYS_RMDIR, Str: S(0, dir+"/rd2")},
		{Name: "rename_rel", NR: unix.SYS_RENAME, Str: S(0, "r1", 1, "r1.new")},
		{Name: "renameat_mixed", NR: unix.SYS_RENAMEAT, Args: [6]int64{0, 0, cwd}, Str: S(1, "r2", 3, dir+"/r2.new"), Open: subFD, Dir: isDir},
		{Name: "renameat2_exchange", NR: unix.SYS_RENAMEAT2, Args: [6]int64{cwd, 0, cwd, 0, unix.RENAME_EXCHANGE}, Str: S(1, "r3", 3, "r4")},
		{Name: "truncate_rel", NR: unix.SYS_TRUNCATE, Args: [6]int64{0, 5}, Str: S(0, "t1")},
		{Name: "ftruncate", NR: unix.SYS_FTRUNCATE, Args: [6]int64{0, 7}, Open: map[int]string{0: dir + "/t2"}},
		{Name: "chmod_setuid", NR: unix.SYS_CHMOD, Args: [6]int64{0, 0o4755}, Str: S(0, "m1")},
		{Name: "fchmod_setgid", NR: unix.SYS_FCHMOD, Args: [6]int64{0, 0o2750}, Open: map[int]string{0: dir + "/m2"}},
		{Name: "fchmodat_dirfd", NR: unix.SYS_FCHMODAT, Args: [6]int64{0, 0, 0o600}, Str: S(1, "m3"), Open: subFD, Dir: isDir},
		{Name: "fchmodat2", NR: sysFchmodat2, Args: [6]int64{cwd, 0, 0o640, 0}, Str: S(1, dir+"/m4")},
		{Name: "chown_rel", NR: unix.SYS_CHOWN, Args: [6]int64{0, 1234, 5678}, Str: S(0, "o1")},
		{Name: "fchown_uid_only", NR: unix.SYS_FCHOWN, Args: [6]int64{0, 4321, -1}, Open: map[int]string{0: dir + "/o2"}},
		{Name: "lchown_abs", NR: unix.SYS_LCHOWN, Args: [6]int64{0, 42, 43}, Str: S(0, dir+"/lnk")},
		{Name: "fchownat_gid_only", NR: unix.SYS_FCHOWNAT, Args: [6]int64{0, 0, -1, 99, unix.AT_SYMLINK_NOFOLLOW}, Str: S(1, "o3"), Open: subFD, Dir: isDir},
		{Name: "link_rel", NR: unix.SYS_LINK, Str: S(0, "l1", 1, "l1.hard")},
		{Name: "linkat_mixed", NR: unix.SYS_LINKAT, Args: [6]int64{cwd, 0, 0, 0, 0}, Str: S(1, dir+"/l1", 3, "l1.hard2"), Open: map[int]string{2: sub}, Dir: map[int]bool{2: true}},
		{Name: "symlink_rel", NR: unix.SYS_SYMLINK, Str: S(0, "/etc/passwd", 1, "s1")},
		{Name: "symlinkat_dirfd", NR: unix.SYS_SYMLINKAT, Str: S(0, "../x", 2, "s2"), Open: map[int]string{1: sub}, Dir: map[int]bool{1: true}},
		{Name: "mkdir_rel", NR: unix.SYS_MKDIR, Args: [6]int64{0, 0o755}, Str: S(0, "d1")},
		{Name: "mkdirat_sticky", NR: unix.SYS_MKDIRAT, Args: [6]int64{0, 0, 0o1777}, Str: S(1, "d2"), Open: subFD, Dir: isDir},
		{Name: "unlink_missing", NR: unix.SYS_UNLINK, Str: S(0, "missing")},
		{Name: "mkdir_exists", NR: unix.SYS_MKDIR, Args: [6]int64{0, 0o700}, Str: S(0, "d1")},
		{Name: "fchmodat_bad_dirfd", NR: unix.SYS_FCHMODAT, Args: [6]int64{9999, 0, 0o644}, Str: S(1, "nodir")},
		{Name: "rename_no_dir", NR: unix.SYS_RENAME, Str: S(0, "t1", 1, dir+"/nosuch/t1")},
		{Name: "openat_create", NR: unix.SYS_OPENAT, Args: [6]int64{cwd, 0, unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_CLOEXEC, 0o600}, Str: S(1, "w1")},
		{Name: "open_append_abs", NR: unix.SYS_OPEN, Args: [6]int64{0, unix.O_RDWR | unix.O_APPEND}, Str: S(0, dir+"/t2")},
		{Name: "creat_dirfd_less", NR: unix.SYS_CREAT, Args: [6]int64{0, 0o4755}, Str: S(0, "w2")},
		{Name: "openat_dirfd_missing", NR: unix.SYS_OPENAT, Args: [6]int64{0, 0, unix.O_WRONLY}, Str: S(1, "nofile"), Open: subFD, Dir: isDir},
		{Name: "openat2_dirfd", NR: unix.SYS_OPENAT2, Args: [6]int64{0, 0, unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, 0o2640}, Str: S(1, "w3"), Open: subFD, Dir: isDir, How: true},
		{Name: "open_readonly", NR: unix.SYS_OPEN, Args: [6]int64{0, unix.O_RDONLY}, Str: S(0, dir+"/t2")},
		{Name: "rename_both_too_long", NR: unix.SYS_RENAME, Str: S(0, dir+"/"+strings.Repeat("a", 5000), 1, dir+"/"+strings.Repeat("b", 5000))},
		{Name: "truncate_too_long", NR: unix.SYS_TRUNCATE, Args: [6]int64{0, 1}, Str: S(0, dir+"/"+strings.Repeat("y", 5000))},
	}
	D := func(s string) string { return dir + "/" + s }
	wants := map[string]want{
		"unlink_abs":           {op: OpUnlink, syscall: "unlink", path: D("u1"), status: PathAbsolute},
		"unlinkat_dirfd":       {op: OpUnlink, syscall: "unlinkat", path: sub + "/u2", status: PathResolved, dirfdFrom: 0},
		"unlinkat_rmdir":       {op: OpRmdir, syscall: "unlinkat", path: D("rd1"), status: PathResolved, flags: unix.AT_REMOVEDIR},
		"rmdir_abs":            {op: OpRmdir, syscall: "rmdir", path: D("rd2"), status: PathAbsolute},
		"rename_rel":           {op: OpRename, syscall: "rename", path: D("r1"), status: PathResolved, newPath: D("r1.new"), newStatus: PathResolved},
		"renameat_mixed":       {op: OpRename, syscall: "renameat", path: sub + "/r2", status: PathResolved, newPath: D("r2.new"), newStatus: PathAbsolute, dirfdFrom: 0},
		"renameat2_exchange":   {op: OpRename, syscall: "renameat2", path: D("r3"), status: PathResolved, newPath: D("r4"), newStatus: PathResolved, flags: unix.RENAME_EXCHANGE},
		"truncate_rel":         {op: OpTruncate, syscall: "truncate", path: D("t1"), status: PathResolved, length: 5},
		"ftruncate":            {op: OpTruncate, syscall: "ftruncate", path: D("t2"), status: PathFD, length: 7, dirfdFrom: 0},
		"chmod_setuid":         {op: OpChmod, syscall: "chmod", path: D("m1"), status: PathResolved, mode: 0o4755},
		"fchmod_setgid":        {op: OpChmod, syscall: "fchmod", path: D("m2"), status: PathFD, mode: 0o2750, dirfdFrom: 0},
		"fchmodat_dirfd":       {op: OpChmod, syscall: "fchmodat", path: sub + "/m3", status: PathResolved, mode: 0o600, dirfdFrom: 0},
		"fchmodat2":            {op: OpChmod, syscall: "fchmodat2", path: D("m4"), status: PathAbsolute, mode: 0o640},
		"chown_rel":            {op: OpChown, syscall: "chown", path: D("o1"), status: PathResolved, uid: 1234, gid: 5678},
		"fchown_uid_only":      {op: OpChown, syscall: "fchown", path: D("o2"), status: PathFD, uid: 4321, gid: -1, dirfdFrom: 0},
		"lchown_abs":           {op: OpChown, syscall: "lchown", path: D("lnk"), status: PathAbsolute, uid: 42, gid: 43},
		"fchownat_gid_only":    {op: OpChown, syscall: "fchownat", path: sub + "/o3", status: PathResolved, uid: -1, gid: 99, flags: unix.AT_SYMLINK_NOFOLLOW, dirfdFrom: 0},
		"link_rel":             {op: OpLink, syscall: "link", path: D("l1"), status: PathResolved, newPath: D("l1.hard"), newStatus: PathResolved},
		"linkat_mixed":         {op: OpLink, syscall: "linkat", path: D("l1"), status: PathAbsolute, newPath: sub + "/l1.hard2", newStatus: PathResolved},
		"symlink_rel":          {op: OpSymlink, syscall: "symlink", path: D("s1"), status: PathResolved, target: "/etc/passwd"},
		"symlinkat_dirfd":      {op: OpSymlink, syscall: "symlinkat", path: sub + "/s2", status: PathResolved, target: "../x", dirfdFrom: 1},
		"mkdir_rel":            {op: OpMkdir, syscall: "mkdir", path: D("d1"), status: PathResolved, mode: 0o755},
		"mkdirat_sticky":       {op: OpMkdir, syscall: "mkdirat", path: sub + "/d2", status: PathResolved, mode: 0o1777, dirfdFrom: 0},
		"unlink_missing":       {op: OpUnlink, syscall: "unlink", path: D("missing"), status: PathResolved, errno: unix.ENOENT},
		"mkdir_exists":         {op: OpMkdir, syscall: "mkdir", path: D("d1"), status: PathResolved, mode: 0o700, errno: unix.EEXIST},
		"fchmodat_bad_dirfd":   {op: OpChmod, syscall: "fchmodat", path: "nodir", status: PathUnresolved, mode: 0o644, dirfd: 9999, errno: unix.EBADF},
		"rename_no_dir":        {op: OpRename, syscall: "rename", path: D("t1"), status: PathResolved, newPath: D("nosuch/t1"), newStatus: PathAbsolute, errno: unix.ENOENT},
		"openat_create":        {op: OpOpenWrite, syscall: "openat", path: D("w1"), status: PathResolved, mode: 0o600, flags: unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_CLOEXEC},
		"open_append_abs":      {op: OpOpenWrite, syscall: "open", path: D("t2"), status: PathAbsolute, flags: unix.O_RDWR | unix.O_APPEND},
		"creat_dirfd_less":     {op: OpOpenWrite, syscall: "creat", path: D("w2"), status: PathResolved, mode: 0o4755, flags: unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC},
		"openat_dirfd_missing": {op: OpOpenWrite, syscall: "openat", path: sub + "/nofile", status: PathResolved, flags: unix.O_WRONLY, dirfdFrom: 0, errno: unix.ENOENT},
		"openat2_dirfd":        {op: OpOpenWrite, syscall: "openat2", path: sub + "/w3", status: PathResolved, mode: 0o2640, flags: unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, dirfdFrom: 0},
		"open_readonly":        {}, // no event
		"rename_both_too_long": {op: OpRename, syscall: "rename", path: D(strings.Repeat("a", 5000))[:pathBuf-1], status: PathAbsolute,
			newPath: D(strings.Repeat("b", 5000))[:pathBuf-1], newStatus: PathAbsolute, errno: unix.ENAMETOOLONG, pathTruncated: true},
		"truncate_too_long": {op: OpTruncate, syscall: "truncate", path: (D(strings.Repeat("y", 5000)))[:pathBuf-1], status: PathAbsolute, length: 1, errno: unix.ENAMETOOLONG, pathTruncated: true},
	}
	for name, w := range wants {
		if w.dirfdFrom == 0 && !strings.Contains("unlinkat_dirfd renameat_mixed ftruncate fchmod_setgid fchmodat_dirfd fchown_uid_only fchownat_gid_only mkdirat_sticky openat_dirfd_missing openat2_dirfd", name) {
			w.dirfdFrom = -1
			if w.dirfd == 0 {
				w.dirfd = unix.AT_FDCWD
			}
		}
		if w.op != OpChown {
			w.uid, w.gid = -1, -1
		}
		wants[name] = w
	}
	if len(calls) != len(wants) {
		t.Fatalf("%d calls, %d expectations", len(calls), len(wants))
	}

	cfg := DefaultConfig()
	cfg.WatchPaths = []string{dir + "/"}
	bus := event.NewBus()
	subscr := bus.Subscribe("test", 4096, KindFileChange)
	c := startChild(t, calls)
	t0 := time.Now()
	startProbe(t, cfg, bus)
	t.Logf("probe started in %v", time.Since(t0))
	res := c.run(t)
	pid := c.cmd.Process.Pid
	// The child opens the files of fd-based calls O_RDWR: open_write events too.
	harnessOpens := 0
	for _, c := range calls {
		for i := range c.Open {
			if !c.Dir[i] {
				harnessOpens++
			}
		}
	}
	wantEvents := len(calls) - 1 + harnessOpens
	got := collect(subscr, pid, 5*time.Second, func(evs []*FileChange) bool { return len(evs) >= wantEvents })
	time.Sleep(200 * time.Millisecond)
	got = append(got, collect(subscr, pid, 300*time.Millisecond, func([]*FileChange) bool { return false })...)
	if len(got) != wantEvents {
		t.Errorf("%d events from the child, want %d (none for the read-only open)", len(got), wantEvents)
	}
	for _, call := range calls {
		name := call.Name
		w, r := wants[name], res[name]
		wantRet := int64(0)
		if w.errno != 0 {
			wantRet = -int64(w.errno)
		}
		if w.op == OpOpenWrite || w.op == "" {
			if w.errno == 0 && r.Ret < 0 {
				t.Errorf("%s: the child's open failed: %d", name, r.Ret)
			}
			if w.errno == 0 {
				wantRet = r.Ret // the fd
			}
		}
		if w.op == "" {
			for _, e := range got {
				if e.Op == OpOpenWrite && e.Flags&(unix.O_WRONLY|unix.O_RDWR) == 0 {
					t.Errorf("%s: event for a read-only open: %+v", name, e)
				}
			}
			continue
		}
		if r.Ret != wantRet {
			t.Errorf("%s: the child got %d, the test expects %d: fix the workload", name, r.Ret, wantRet)
		}
		var matches []*FileChange
		for _, e := range got {
			if e.Syscall == w.syscall && e.Path == w.path && int64(e.Ret) == r.Ret {
				matches = append(matches, e)
			}
		}
		if len(matches) != 1 {
			t.Errorf("%s: %d events for %s %.80q ret %d, want 1", name, len(matches), w.syscall, w.path, r.Ret)
			for _, e := range got {
				if e.Syscall == w.syscall {
					t.Logf("  seen: %s %.80q (%d bytes) ret %d", e.Syscall, e.Path, len(e.Path), e.Ret)
				}
			}
			continue
		}
		e := matches[0]
		if e.Op != w.op || e.PathStatus != w.status || e.NewPath != w.newPath || e.NewPathTruncated != (w.pathTruncated && w.newPath != "") || e.NewPathStatus != w.newStatus || e.Target != w.target || e.PathTruncated != w.pathTruncated {
			t.Errorf("%s: op %s status %s new %q (%s) target %q truncated %v; want %s %s %q (%s) %q %v", name,
				e.Op, e.PathStatus, e.NewPath, e.NewPathStatus, e.Target, e.PathTruncated, w.op, w.status, w.newPath, w.newStatus, w.target, w.pathTruncated)
		}
		if e.Setuid != (w.mode&0o4000 != 0) || e.Setgid != (w.mode&0o2000 != 0) {
			t.Errorf("%s: setuid %v setgid %v for mode %#o", name, e.Setuid, e.Setgid, w.mode)
		}
		if e.Mode != w.mode || e.NewUID != w.uid || e.NewGID != w.gid || e.Length != w.length || e.Flags != w.flags {
			t.Errorf("%s: mode %#o uid %d gid %d length %d flags %#x; want %#o %d %d %d %#x", name, e.Mode, e.NewUID, e.NewGID, e.Length, e.Flags, w.mode, w.uid, w.gid, w.length, w.flags)
		}
		wantDirfd := w.dirfd
		if w.dirfdFrom >= 0 {
			wantDirfd = int32(r.FDs[w.dirfdFrom])
		}
		if e.Dirfd != wantDirfd {
			t.Errorf("%s: dirfd %d, want %d", name, e.Dirfd, wantDirfd)
		}
		if int64(e.Ret) != r.Ret {
			t.Errorf("%s: ret %d, the child got %d", name, e.Ret, r.Ret)
		}
		wantErr := ""
		if w.errno != 0 {
			wantErr = unix.ErrnoName(w.errno)
		}
		if e.Error != wantErr {
			t.Errorf("%s: error %q, want %q", name, e.Error, wantErr)
		}
		if e.Watch != dir+"/" && w.status != PathUnresolved {
			t.Errorf("%s: watch %q, want %q", name, e.Watch, dir+"/")
		}
		if e.UID != 0 || e.Comm == "" || e.PPID == 0 {
			t.Errorf("%s: process context uid %d comm %q ppid %d", name, e.UID, e.Comm, e.PPID)
		}
	}
}
