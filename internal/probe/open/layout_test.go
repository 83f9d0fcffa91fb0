package open

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/vigilproject/vigil/internal/probe"
)

// Records are decoded by copying into the bpf2go structs; what remains to
// check is the shared process context and where the path starts.
func TestRecordLayout(t *testing.T) {
	if err := probe.CheckKernelProc(reflect.TypeOf(openVigilProc{})); err != nil {
		t.Error(err)
	}
	var x openOpenEvent
	if off := unsafe.Offsetof(x.Path); off != uintptr(pathOff) {
		t.Errorf("path at offset %d, fixed part is %d bytes", off, pathOff)
	}
	if unsafe.Sizeof(x.Path) != 2*pathBuf {
		t.Errorf("path buffer %d, decoder assumes %d", unsafe.Sizeof(x.Path), 2*pathBuf)
	}
	var k openCountKey
	if unsafe.Sizeof(k) != 16 || unsafe.Offsetof(k.Err) != 8 {
		t.Errorf("count_key: size %d, err at %d; collector assumes 16 and 8", unsafe.Sizeof(k), unsafe.Offsetof(k.Err))
	}
}
