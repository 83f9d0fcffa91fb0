package kernel

import (
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// BPF LSM: the hook is fixed in the program's section name; Target only
// documents it. Needs "bpf" in the active LSM list and no lockdown.
func init() { registerAttacher(LSM, attachLSM) }

func attachLSM(p *ebpf.Program, _ *ebpf.ProgramSpec, _ Hook) ([]io.Closer, string, error) {
	return one(link.AttachLSM(link.LSMOptions{Program: p}))
}
