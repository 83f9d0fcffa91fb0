package kernel

import (
	"fmt"
	"io"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Classic tracepoints: Target is "group/name" (syscalls/sys_enter_openat).
// Their ids are resolved through tracefs, which is mounted on demand.
func init() { registerAttacher(Tracepoint, attachTracepoint) }

func attachTracepoint(p *ebpf.Program, _ *ebpf.ProgramSpec, h Hook) ([]io.Closer, string, error) {
	group, name, ok := strings.Cut(h.Target, "/")
	if !ok {
		return nil, "", fmt.Errorf("tracepoint target %q is not group/name", h.Target)
	}
	if err := EnsureTracefs(); err != nil {
		return nil, "", err
	}
	return one(link.Tracepoint(group, name, p, nil))
}
