package kernel

import (
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Kprobes: Target is the kernel function. Only an optional upgrade: many
// kernels are built without CONFIG_KPROBES.
func init() { registerAttacher(Kprobe, attachKprobe) }

func attachKprobe(p *ebpf.Program, _ *ebpf.ProgramSpec, h Hook) ([]io.Closer, string, error) {
	return one(link.Kprobe(h.Target, p, nil))
}
