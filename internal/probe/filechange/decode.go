package filechange

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
)

// Record kind, ops, syscalls and path states, as in filechange.bpf.c.
const kindFileChange = 1

const pathBuf = 4096 // most bytes of one path a record carries, NUL included

// opNames maps the record's op byte (FC_*) to FileChange.Op.
var opNames = [...]string{1: OpUnlink, 2: OpRmdir, 3: OpRename, 4: OpTruncate, 5: OpChmod, 6: OpChown, 7: OpLink, 8: OpSymlink, 9: OpMkdir, 10: OpOpenWrite}

// numOps is FC_MAX: the counts map holds 4 slots per op below it.
const numOps = len(opNames)

// syscallNames maps the record's syscall byte (SC_*) to a name.
var syscallNames = [...]string{
	1: "unlink", 2: "unlinkat", 3: "rmdir", 4: "rename", 5: "renameat", 6: "renameat2",
	7: "truncate", 8: "ftruncate", 9: "chmod", 10: "fchmod", 11: "fchmodat", 12: "fchmodat2",
	13: "chown", 14: "fchown", 15: "lchown", 16: "fchownat", 17: "link", 18: "linkat",
	19: "symlink", 20: "symlinkat", 21: "mkdir", 22: "mkdirat",
	23: "open", 24: "openat", 25: "openat2", 26: "creat",
}

const (
	stateAbsolute   = 0
	stateResolved   = 1
	stateUnresolved = 2
	stateFD         = 3
	stateRaw        = 4 // a symlink's target: text, not resolved
	stateNone       = 5 // the call has no such path
)

var stateNames = [...]string{stateAbsolute: PathAbsolute, stateResolved: PathResolved, stateUnresolved: PathUnresolved, stateFD: PathFD, stateRaw: "", stateNone: ""}

// pathOff is where the paths follow the fixed part of a record.
var pathOff = int(unsafe.Sizeof(filechangeFcHead{}))

type rawChange struct {
	op, syscall    string
	path1, path2   string
	state1, state2 uint8
	trunc1, trunc2 bool
	ret            int32
	dirfd, dirfd2  int32
	mode           uint32
	uid, gid       uint32
	flags          uint32
	watched        uint32 // 1 + kernel filter entry, 0 when every path is watched
	length         int64
	tsNS           uint64
	proc           probe.KernelProc
}

var errShort = errors.New("record too short")

// decodeChange parses one ring buffer record. It never panics, whatever b is.
func decodeChange(b []byte) (rawChange, error) {
	var r rawChange
	if len(b) < pathOff+2 {
		return r, fmt.Errorf("file_change record: %w (%d bytes)", errShort, len(b))
	}
	h, err := kernel.DecodeRecord[filechangeFcHead](b)
	if err != nil {
		return r, fmt.Errorf("file_change record: %w", err)
	}
	if h.Kind != kindFileChange {
		return r, fmt.Errorf("file_change record: unknown kind %d", h.Kind)
	}
	if int(h.Op) >= len(opNames) || opNames[h.Op] == "" {
		return r, fmt.Errorf("file_change record: unknown op %d", h.Op)
	}
	if int(h.Syscall) >= len(syscallNames) || syscallNames[h.Syscall] == "" {
		return r, fmt.Errorf("file_change record: unknown syscall %d", h.Syscall)
	}
	if h.PathState > stateNone || h.Path2State > stateNone {
		return r, fmt.Errorf("file_change record: unknown path state %d/%d", h.PathState, h.Path2State)
	}
	l1, l2 := int(h.PathLen), int(h.Path2Len)
	if l1 >= pathBuf || l2 >= pathBuf || pathOff+l1+1+l2+1 > len(b) {
		return r, fmt.Errorf("file_change record: path lengths %d and %d exceed the record (%d bytes)", l1, l2, len(b))
	}
	r.op, r.syscall = opNames[h.Op], syscallNames[h.Syscall]
	r.state1, r.state2 = h.PathState, h.Path2State
	r.trunc1, r.trunc2 = h.Truncated&1 != 0, h.Truncated&2 != 0
	r.path1 = probe.CString(b[pathOff : pathOff+l1])
	r.path2 = probe.CString(b[pathOff+l1+1 : pathOff+l1+1+l2])
	r.ret, r.dirfd, r.dirfd2 = h.Ret, h.Dirfd, h.Dirfd2
	r.mode, r.uid, r.gid, r.flags = h.Mode, h.Uid, h.Gid, h.Flags
	r.watched, r.length, r.tsNS = h.Watched, h.Length, h.TsNs
	r.proc = probe.ToKernelProc(&h.Proc)
	return r, nil
}
