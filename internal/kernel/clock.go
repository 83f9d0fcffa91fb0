package kernel

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts the kernel's boot-time nanoseconds (bpf_ktime_get_boot_ns)
// into wall-clock time.
type Clock struct{ offset int64 }

// NewClock captures the offset between the wall clock and CLOCK_BOOTTIME.
func NewClock() *Clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return &Clock{offset: time.Now().UnixNano() - ts.Nano()}
}

// Wall returns the wall-clock time of a boot-time timestamp.
func (c *Clock) Wall(bootNS uint64) time.Time {
	return time.Unix(0, int64(bootNS)+c.offset)
}

// BootNS returns the current CLOCK_BOOTTIME in nanoseconds.
func BootNS() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}
