package kernel

import (
	"io"

	"github.com/cilium/ebpf"
)

// attachFunc attaches a loaded program (made from spec) to hook h. It returns what must be
// closed to detach it (several links for per-CPU hooks) and, optionally, a
// short note on what the attachment covers for ProgramStatus.Detail.
type attachFunc func(prog *ebpf.Program, spec *ebpf.ProgramSpec, h Hook) (links []io.Closer, detail string, err error)

// attachers holds one attacher per hook kind; each attach_<kind>.go file
// registers its own, so a new attach kind is one new file.
var attachers = map[HookKind]attachFunc{}

func registerAttacher(kind HookKind, a attachFunc) {
	if _, dup := attachers[kind]; dup {
		panic("kernel: attacher registered twice for " + string(kind))
	}
	attachers[kind] = a
}

// one wraps a single closer for attachers that make one link.
func one(c io.Closer, err error) ([]io.Closer, string, error) {
	if err != nil {
		return nil, "", err
	}
	return []io.Closer{c}, "", nil
}
