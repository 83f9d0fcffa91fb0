// Command openloop is the benchmark workload: N openat+close pairs on one
// OS thread with raw syscalls. It prints the loop's wall time in ns.
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
	t0 := time.Now()
	for range *n {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, cwd, uintptr(unsafe.Pointer(p)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			fmt.Fprintf(os.Stderr, "openat %s: %v\n", *path, e)
			os.Exit(1)
		}
		unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	}
	fmt.Println(time.Since(t0).Nanoseconds())
}
