package process

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/vigilproject/vigil/internal/probe"
)

// The records are decoded by copying into the bpf2go structs; what remains
// to check is that the shared process context has probe.KernelProc's layout
// and that the argument area starts right after the fixed part.
func TestRecordLayout(t *testing.T) {
	if err := probe.CheckKernelProc(reflect.TypeOf(processVigilProc{})); err != nil {
		t.Error(err)
	}
	if off := unsafe.Offsetof(processExecEvent{}.Args); off != uintptr(execHeadSize) {
		t.Errorf("exec args at offset %d, fixed part is %d bytes", off, execHeadSize)
	}
	if n := len(processExecHead{}.Filename); n != filenameBuf {
		t.Errorf("filename buffer %d, decoder uses %d", n, filenameBuf)
	}
}
