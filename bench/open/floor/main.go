// Command floor attaches empty BPF programs (return 0) to the tracepoints the
// open probe uses, to measure the cost of merely running a BPF program there.
// With "raw_syscalls" it attaches them to raw_syscalls:sys_{enter,exit}
// instead (every syscall), and with "raw_syscalls_rawtp" as raw tracepoints
// there: the floors for the syscalls probe. It prints "attached" and waits
// for SIGINT or SIGTERM.
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
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	var links []link.Link
	attach := func(group, name string) {
		typ := ebpf.TracePoint
		if mode == "raw_syscalls_rawtp" {
			typ = ebpf.RawTracepoint
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         typ,
			License:      "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		var l link.Link
		if typ == ebpf.RawTracepoint {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: prog})
		} else {
			l, err = link.Tracepoint(group, name, prog, nil)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "attach:", err)
			os.Exit(1)
		}
		links = append(links, l)
	}
	switch mode {
	case "":
		attach("syscalls", "sys_enter_openat")
		attach("syscalls", "sys_exit_openat")
	case "raw_syscalls", "raw_syscalls_rawtp":
		attach("raw_syscalls", "sys_enter")
		attach("raw_syscalls", "sys_exit")
	default:
		fmt.Fprintln(os.Stderr, "usage: floor [raw_syscalls|raw_syscalls_rawtp]")
		os.Exit(2)
	}
	fmt.Println("attached")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
	for _, l := range links {
		l.Close()
	}
}
