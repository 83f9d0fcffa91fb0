package event

// Path states of an Open event: how Path was obtained.
const (
	PathAbsolute   = "absolute"   // the caller passed an absolute path
	PathResolved   = "resolved"   // a relative path joined to its directory (cwd or dirfd) in the kernel
	PathUnresolved = "unresolved" // a relative path whose directory could not be determined
)

// Open is a completed open, openat, openat2 or creat.
type Open struct {
	Header
	Syscall string `json:"syscall"` // open, openat, openat2, creat
	// Path is absolute when PathResolved is true, else the path as passed.
	// "." and ".." components are kept as the caller wrote them.
	Path          string `json:"path"`
	PathPassed    string `json:"path_passed"`   // the path argument as the caller passed it
	PathStatus    string `json:"path_status"`   // absolute, resolved or unresolved
	PathResolved  bool   `json:"path_resolved"` // Path is absolute
	PathTruncated bool   `json:"path_truncated"`
	Dirfd         int32  `json:"dirfd"` // -100 (AT_FDCWD) for open, creat and cwd-relative openat
	Flags         uint64 `json:"flags"`
	FlagNames     string `json:"flag_names"` // O_WRONLY|O_CREAT|O_CLOEXEC
	Mode          uint32 `json:"mode"`       // only with O_CREAT or O_TMPFILE
	FD            int32  `json:"fd"`         // -1 on failure
	Ret           int32  `json:"ret"`        // the syscall's return: fd or -errno
	Error         string `json:"error,omitempty"`
}
