package syscalls

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The generated table must agree with x/sys/unix, which is generated
// independently from the same kernel headers.
func TestTableMatchesUnix(t *testing.T) {
	for name, nr := range map[string]int{
		"read": unix.SYS_READ, "openat": unix.SYS_OPENAT, "openat2": unix.SYS_OPENAT2,
		"nanosleep": unix.SYS_NANOSLEEP, "getppid": unix.SYS_GETPPID, "exit_group": unix.SYS_EXIT_GROUP,
		"clock_nanosleep": unix.SYS_CLOCK_NANOSLEEP, "io_uring_setup": unix.SYS_IO_URING_SETUP,
		"creat": unix.SYS_CREAT, "close_range": unix.SYS_CLOSE_RANGE,
	} {
		if got := Name(nr); got != name {
			t.Errorf("Name(%d) = %q, want %q", nr, got, name)
		}
		if got, ok := Number(name); !ok || got != nr {
			t.Errorf("Number(%q) = %d, %v; want %d", name, got, ok, nr)
		}
	}
	if got := Name(100000); got != "syscall_100000" {
		t.Errorf("unknown number: %q", got)
	}
	if got := Name(-1); got != "syscall_-1" {
		t.Errorf("negative number: %q", got)
	}
	if Max < 400 {
		t.Errorf("table ends at %d, want the 4xx syscalls too", Max)
	}
}
