// Package kernel is vigil's contact surface with the running kernel: it mounts
// the pseudo file systems BPF needs, probes which BPF features and hook types
// work here, and loads and attaches programs by trying their hook candidates
// in order.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// TracefsPath is where classic tracepoints are looked up.
const TracefsPath = "/sys/kernel/tracing"

// EnsureTracefs mounts tracefs at /sys/kernel/tracing when it is not mounted
// yet. Classic tracepoints (syscalls:*, tcp:*) need it to resolve their ids.
func EnsureTracefs() error {
	if mounted(TracefsPath, "tracefs") {
		return nil
	}
	if _, err := os.Stat(TracefsPath); err != nil {
		return fmt.Errorf("tracefs: %s does not exist: %w", TracefsPath, err)
	}
	if err := unix.Mount("nodev", TracefsPath, "tracefs", 0, ""); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("tracefs: mounting %s needs CAP_SYS_ADMIN: %w", TracefsPath, err)
		}
		return fmt.Errorf("tracefs: mount %s: %w", TracefsPath, err)
	}
	return nil
}

// mounted reports whether a file system of type fstype is mounted at dir.
func mounted(dir, fstype string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == dir && f[2] == fstype {
			return true
		}
	}
	return false
}
