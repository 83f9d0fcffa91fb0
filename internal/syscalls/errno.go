package syscalls

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrnoName names a positive errno value (ENOENT), or "E<n>" when the
// value has no name. Callers choose what zero or a negative value means.
func ErrnoName(errno int) string {
	if n := unix.ErrnoName(syscall.Errno(errno)); n != "" {
		return n
	}
	return "E" + strconv.Itoa(errno)
}
