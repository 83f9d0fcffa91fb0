package probe

import (
	"bytes"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/proc"
)

// KernelProc is the process context a BPF record carries: struct vigil_proc
// of bpf/include/vigil.h, filled from the task at the time of the event.
// StartNS is the process's start in ns since boot (task->start_boottime).
type KernelProc struct {
	PID, TID, PPID uint32
	UID, GID       uint32
	_              uint32
	StartNS        uint64
	CgroupID       uint64
	Comm           [16]byte
	ParentComm     [16]byte
}

// vigilProcFields are the field names bpf2go gives struct vigil_proc, in
// order, matched with KernelProc's fields by CheckKernelProc.
var vigilProcFields = []string{"Pid", "Tid", "Ppid", "Uid", "Gid", "Pad", "StartNs", "CgroupId", "Comm", "ParentComm"}

// ToKernelProc copies the bpf2go-generated vigil_proc of a probe package
// (each package has its own Go type for the same C struct) into a
// KernelProc. Each probe's tests call CheckKernelProc on its type.
func ToKernelProc[T any](v *T) KernelProc {
	var k KernelProc
	if unsafe.Sizeof(*v) != unsafe.Sizeof(k) {
		panic(fmt.Sprintf("probe: %T is not struct vigil_proc", *v))
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&k)), unsafe.Sizeof(k)), unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(k)))
	return k
}

// CheckKernelProc reports whether t (a bpf2go-generated vigil_proc type) has
// KernelProc's layout, field by field.
func CheckKernelProc(t reflect.Type) error {
	kt := reflect.TypeOf(KernelProc{})
	if t.Size() != kt.Size() {
		return fmt.Errorf("%s: size %d, KernelProc %d", t, t.Size(), kt.Size())
	}
	var named []reflect.StructField
	for i := range t.NumField() {
		if f := t.Field(i); f.Name != "_" {
			named = append(named, f)
		}
	}
	if len(named) != len(vigilProcFields) || kt.NumField() != len(vigilProcFields) {
		return fmt.Errorf("%s: %d fields, want %d", t, len(named), len(vigilProcFields))
	}
	for i, f := range named {
		k := kt.Field(i)
		if f.Name != vigilProcFields[i] || f.Offset != k.Offset || f.Type.Size() != k.Type.Size() {
			return fmt.Errorf("%s.%s at offset %d (%d bytes), want %s at %d (%d bytes)", t, f.Name, f.Offset, f.Type.Size(), vigilProcFields[i], k.Offset, k.Type.Size())
		}
	}
	return nil
}

// Process is the event's process context: what the kernel saw at the time
// of the event (ids, comm, parent, start time, cgroup), completed with what
// only the process cache knows (exe, container). The kernel's fields win,
// so a process gone before enrichment still has its parent and start time.
func (k KernelProc) Process(pr proc.Process) event.Process {
	p := event.Process{
		PID: k.PID, TID: k.TID, PPID: k.PPID, UID: k.UID, GID: k.GID,
		Comm: CString(k.Comm[:]), ParentComm: CString(k.ParentComm[:]),
		StartNS: k.StartNS, CgroupID: k.CgroupID,
	}
	// A cache entry of an earlier process with the same pid, or of the
	// program before an exec the cache has not seen yet, is not ours.
	if pr.Describes(k.PID, k.TID, k.StartNS, p.Comm) {
		p.Exe, p.Container, p.Runtime, p.PodUID, p.Unit = pr.Exe, pr.Container.ID, pr.Container.Runtime, pr.Container.PodUID, pr.Container.Unit
	}
	return p
}

// Command is the task's comm as a string.
func (k KernelProc) Command() string { return CString(k.Comm[:]) }

// CacheEntry is the process as the cache should learn it from this record
// (for Procs.Lookup and Exec): identity, parent and names.
func (k KernelProc) CacheEntry() proc.Process {
	return proc.Process{
		PID: k.PID, PPID: k.PPID, StartNS: k.StartNS, UID: k.UID, GID: k.GID,
		Comm: CString(k.Comm[:]), CgroupID: k.CgroupID,
	}
}

// CString decodes a NUL-terminated C char array, as bpf2go renders it
// ([N]int8) or as raw bytes.
func CString[T int8 | byte](b []T) string {
	u := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	if i := bytes.IndexByte(u, 0); i >= 0 {
		u = u[:i]
	}
	return string(u)
}

// CgroupResolver returns the agent's shared cgroup resolver when it reads the
// same hierarchy as root, so probes do not each cache and walk the tree, and a
// resolver of the probe's own otherwise (tests, or another configured mount).
func (e *Env) CgroupResolver(root string) *proc.Cgroups {
	if e.Procs != nil {
		if cg := e.Procs.Cgroups(); cg != nil && cg.Root() == proc.Cgroup2Root(root) {
			return cg
		}
	}
	return proc.NewCgroups(root, 4096)
}
