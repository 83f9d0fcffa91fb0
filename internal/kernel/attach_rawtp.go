package kernel

import (
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Raw tracepoints: Target is the tracepoint name (sched_switch). They work
// without BTF-typed arguments and without tracefs.
func init() { registerAttacher(RawTP, attachRawTP) }

func attachRawTP(p *ebpf.Program, _ *ebpf.ProgramSpec, h Hook) ([]io.Closer, string, error) {
	return one(link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.Target, Program: p}))
}
