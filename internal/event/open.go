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
	Syscall string `json:"syscall" doc:"open, openat, openat2 or creat"` // open, openat, openat2, creat
	// Path is absolute when PathResolved is true, else the path as passed.
	// "." and ".." components are kept as the caller wrote them.
	Path          string `json:"path" doc:"absolute path when path_resolved, else the path as passed"`
	PathPassed    string `json:"path_passed" doc:"the path argument as the caller passed it"` // the path argument as the caller passed it
	PathStatus    string `json:"path_status" doc:"absolute, resolved or unresolved"`          // absolute, resolved or unresolved
	PathResolved  bool   `json:"path_resolved" doc:"path is absolute"`                        // Path is absolute
	PathTruncated bool   `json:"path_truncated" doc:"path was cut at the kernel buffer size"`
	Dirfd         int32  `json:"dirfd" doc:"directory fd of openat (-100: AT_FDCWD)"` // -100 (AT_FDCWD) for open, creat and cwd-relative openat
	Flags         uint64 `json:"flags" doc:"open flags (O_*)"`
	FlagNames     string `json:"flag_names" doc:"flags as names: O_WRONLY|O_CREAT|O_CLOEXEC"` // O_WRONLY|O_CREAT|O_CLOEXEC
	Mode          uint32 `json:"mode" doc:"creation mode, only with O_CREAT or O_TMPFILE"`    // only with O_CREAT or O_TMPFILE
	FD            int32  `json:"fd" doc:"file descriptor, -1 on failure"`                     // -1 on failure
	Ret           int32  `json:"ret" doc:"the syscall return: fd or -errno"`                  // the syscall's return: fd or -errno
	Error         string `json:"error,omitempty" doc:"errno name of a failed open"`
}
