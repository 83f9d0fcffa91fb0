// Command openloop is the benchmark workload: N openat+close pairs on one
// OS thread with raw syscalls. It prints the loop's wall time and the
// thread's CPU time (user + system, where the BPF programs' cost lands), in
// ns: CPU time is what other load on the machine disturbs least.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 1000000, "openat+close pairs")
	path := flag.String("path", "/etc/hostname", "file to open")
	flag.Parse()
	runtime.LockOSThread()
	p, err := unix.BytePtrFromString(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cwd := uintptr(unix.AT_FDCWD & 0xffffffff)
	c0 := threadCPU()
	t0 := time.Now()
	for range *n {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, cwd, uintptr(unsafe.Pointer(p)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			fmt.Fprintf(os.Stderr, "openat %s: %v\n", *path, e)
			os.Exit(1)
		}
		unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	}
	wall := time.Since(t0).Nanoseconds()
	fmt.Println(wall, threadCPU()-c0)
}

// threadCPU is the calling thread's CPU time in ns.
func threadCPU() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}
