package kernel

import (
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// BTF tracing programs (tp_btf and fentry): the target is fixed in the
// program's section name at load time; Target only documents it. fentry is
// refused on kernels in lockdown (EPERM at load).
func init() {
	registerAttacher(TpBTF, attachTracing)
	registerAttacher(Fentry, attachTracing)
}

func attachTracing(p *ebpf.Program, _ *ebpf.ProgramSpec, _ Hook) ([]io.Closer, string, error) {
	return one(link.AttachTracing(link.TracingOptions{Program: p}))
}
