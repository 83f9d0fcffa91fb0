// Command floor attaches empty BPF programs (return 0) to the tracepoints the
// open probe uses, to measure the cost of merely running a BPF program there.
// It prints "attached" and waits for SIGINT or SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

func main() {
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
	tps := []string{"sys_enter_openat", "sys_exit_openat"}
	if len(os.Args) > 1 && os.Args[1] == "raw_syscalls" {
		tps = nil // every syscall: the floor for the syscalls probe
	}
	var links []link.Link
	attach := func(group, name string) {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.TracePoint,
			License:      "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		l, err := link.Tracepoint(group, name, prog, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "attach:", err)
			os.Exit(1)
		}
		links = append(links, l)
	}
	if tps == nil {
		attach("raw_syscalls", "sys_enter")
		attach("raw_syscalls", "sys_exit")
	}
	for _, tp := range tps {
		attach("syscalls", tp)
	}
	fmt.Println("attached")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
	for _, l := range links {
		l.Close()
	}
}
