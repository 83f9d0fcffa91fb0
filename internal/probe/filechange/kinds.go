package filechange

import (
	"fmt"
	"strconv"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// KindFileChange is one completed call that changes a file's name, content
// length, mode or owner in a watched tree.
const KindFileChange event.Kind = "file_change"

// Ops, the value of FileChange.Op.
const (
	OpUnlink   = "unlink"
	OpRmdir    = "rmdir"
	OpRename   = "rename"
	OpTruncate = "truncate"
	OpChmod    = "chmod"
	OpChown    = "chown"
	OpLink     = "link"
	OpSymlink  = "symlink"
	OpMkdir    = "mkdir"
	// OpOpenWrite is an open that may change the file: for writing
	// (O_WRONLY, O_RDWR), creating (O_CREAT) or truncating (O_TRUNC).
	OpOpenWrite = "open_write"
)

// Path states of FileChange.PathStatus and NewPathStatus: how the path was
// obtained.
const (
	PathAbsolute   = event.PathAbsolute   // passed as an absolute path
	PathResolved   = event.PathResolved   // relative, joined to its directory (cwd or dirfd) in the kernel
	PathUnresolved = event.PathUnresolved // relative, directory unknown: the path as passed
	PathFD         = "fd"                 // the path of the file open at the fd (ftruncate, fchmod, fchown)
)

// FileChange is one completed unlink, rmdir, rename, truncate, chmod,
// chown, link, symlink or mkdir, in any of its syscall forms, or an open
// for writing, creating or truncating (open_write), successful or not.
// One kind with an op field, so a rule or trace can take all file changes
// at once (`evt.op in ["unlink", "rename"]`) and every op shares
// the path fields.
//
// Which path is which: Path is the file the call acts on (the old name of
// a rename, the existing file of a link, the new link of a symlink);
// NewPath is the name a rename or link creates; Target is the text a
// symlink stores.
type FileChange struct {
	event.Header
	Op            string `json:"op" doc:"unlink, rmdir, rename, truncate, chmod, chown, link, symlink, mkdir, or open_write (an open with O_WRONLY, O_RDWR, O_CREAT or O_TRUNC)"`
	Syscall       string `json:"syscall" doc:"the syscall: unlink, unlinkat, rmdir, rename, renameat, renameat2, truncate, ftruncate, chmod, fchmod, fchmodat, fchmodat2, chown, fchown, lchown, fchownat, link, linkat, symlink, symlinkat, mkdir, mkdirat, open, openat, openat2, creat"`
	Path          string `json:"path" doc:"absolute path of the file acted on (a rename's old name, a link's existing file, a symlink's new link), unless path_status is unresolved"`
	PathStatus    string `json:"path_status" doc:"absolute (passed so), resolved (relative, joined to cwd or dirfd), fd (the fd's file) or unresolved (as passed)"`
	PathTruncated bool   `json:"path_truncated" doc:"path was cut at 4095 bytes"`
	NewPath       string `json:"new_path,omitempty" doc:"rename and link: the new name (absolute unless new_path_status is unresolved)"`
	NewPathStatus string `json:"new_path_status,omitempty" doc:"how new_path was obtained, as path_status"`
	// NewPathTruncated is new_path cut at 4095 bytes.
	NewPathTruncated bool   `json:"new_path_truncated,omitempty" doc:"new_path was cut at 4095 bytes"`
	Target           string `json:"target,omitempty" doc:"symlink: the text the link stores, as passed"`
	Dirfd            int32  `json:"dirfd" doc:"directory fd of an at-call, or the fd of ftruncate, fchmod and fchown (-100: AT_FDCWD)"`
	// Mode is the mode chmod sets or mkdir asks for (before the umask),
	// with the setuid (04000, 2048), setgid (02000, 1024) and sticky bits.
	Mode uint32 `json:"mode" doc:"chmod: the new mode; mkdir and open_write with O_CREAT: the mode asked for (before umask); setuid is 04000 (2048), setgid 02000 (1024)"`
	// Setuid and Setgid test Mode's bits for rules (CEL has no & operator).
	Setuid bool   `json:"setuid" doc:"mode has the setuid bit (04000)"`
	Setgid bool   `json:"setgid" doc:"mode has the setgid bit (02000)"`
	NewUID int64  `json:"new_uid" doc:"chown: the new owner; -1 unchanged or not a chown"`
	NewGID int64  `json:"new_gid" doc:"chown: the new group; -1 unchanged or not a chown"`
	Length int64  `json:"length" doc:"truncate: the new length in bytes"`
	Flags  uint32 `json:"flags" doc:"the call's flags (open_write: O_* open flags; else AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, RENAME_EXCHANGE ...), 0 when it has none"`
	Ret    int32  `json:"ret" doc:"the syscall return: 0 (open_write: the fd) or -errno"`
	Error  string `json:"error,omitempty" doc:"errno name of a failed call"`
	// Watch is the watched prefix the path (or new_path) is under.
	Watch string `json:"watch,omitempty" doc:"the watched prefix the change fell under (probes.filechange.watch_paths)"`
}

var kinds = schema.Names(
	schema.MustRegister(schema.Kind{
		Name:     KindFileChange,
		Producer: Name,
		Doc:      "A completed unlink, rmdir, rename, truncate, chmod, chown, link, symlink, mkdir (every syscall form) or open for writing (open_write) under a watched tree, with absolute paths, the new mode, owner or length, and the result; calls outside the watched trees are only counted.",
		Columns: []schema.Column{
			{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "COMM", Field: "comm"},
			{Header: "OP", Field: "op"},
			{Header: "ERR", Format: func(ev event.Event) string {
				if e := ev.(*FileChange); e.Error != "" {
					return e.Error
				}
				return "0"
			}},
			{Header: "DETAIL", Format: func(ev event.Event) string { return detail(ev.(*FileChange)) }},
			{Header: "PATH", Format: func(ev event.Event) string {
				e := ev.(*FileChange)
				p := showPath(e.Path, e.PathStatus, e.PathTruncated)
				switch {
				case e.NewPath != "":
					p += " -> " + showPath(e.NewPath, e.NewPathStatus, e.NewPathTruncated)
				case e.Target != "":
					p += " -> " + e.Target
				}
				return p
			}},
		},
	}, FileChange{}),
)

func showPath(p, status string, truncated bool) string {
	if truncated {
		p += "..."
	}
	if status == PathUnresolved {
		p += " (relative, unresolved)"
	}
	return p
}

// detail is the op's argument as a table shows it.
func detail(e *FileChange) string {
	switch e.Op {
	case OpChmod, OpMkdir:
		return fmt.Sprintf("%#o", e.Mode)
	case OpOpenWrite:
		if e.Mode != 0 {
			return fmt.Sprintf("%#o %#o", e.Flags, e.Mode)
		}
		return fmt.Sprintf("%#o", e.Flags)
	case OpChown:
		return id(e.NewUID) + ":" + id(e.NewGID)
	case OpTruncate:
		return strconv.FormatInt(e.Length, 10)
	}
	return ""
}

func id(v int64) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}
