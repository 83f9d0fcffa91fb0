package process

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
)

// Record kinds, as in process.bpf.c.
const (
	kindExec       = 1
	kindExit       = 2
	kindFork       = 3
	kindExecFailed = 4
)

const filenameBuf = 512 // FILENAME_BUF

var execHeadSize = int(unsafe.Sizeof(processExecHead{}))

// The records are copied into the structs bpf2go generated from
// process.bpf.c (kernel.DecodeRecord), so no offset is written by hand.

type rawExec struct {
	failed        bool
	argsTruncated bool
	retval        int32
	tsNS          uint64
	proc          probe.KernelProc
	filename      string
	args          []string
}

type rawExit struct {
	exitCode uint32
	tsNS     uint64
	proc     probe.KernelProc
}

type rawFork struct {
	childPID     uint32
	tsNS         uint64
	childStartNS uint64
	proc         probe.KernelProc // the parent's: the forking task
}

var errShort = errors.New("record too short")

// recordKind returns the kind byte of a record.
func recordKind(b []byte) (uint8, error) {
	if len(b) == 0 {
		return 0, errShort
	}
	return b[0], nil
}

func decodeExec(b []byte, maxArgs int) (rawExec, error) {
	var e rawExec
	h, err := kernel.DecodeRecord[processExecHead](b)
	if err != nil {
		return e, fmt.Errorf("exec record: %w", err)
	}
	e.failed = h.Kind == kindExecFailed
	e.argsTruncated = h.ArgsTruncated != 0
	e.retval, e.tsNS = h.Retval, h.TsNs
	e.proc = probe.ToKernelProc(&h.Proc)
	fnLen := min(int(h.FilenameLen), filenameBuf)
	e.filename = probe.CString(h.Filename[:fnLen])
	argsLen := int(h.ArgsLen)
	if argsLen > len(b)-execHeadSize {
		return e, fmt.Errorf("exec record: args length %d exceeds record (%d bytes)", argsLen, len(b))
	}
	e.args, e.argsTruncated = splitArgs(b[execHeadSize:execHeadSize+argsLen], maxArgs, e.argsTruncated)
	return e, nil
}

// splitArgs splits the NUL-separated argument area, keeping at most maxArgs.
// Every whole argument ends in a NUL; only that one terminator is dropped
// from the end, so empty trailing arguments survive, and a last argument cut
// by the byte limit (no terminator) is kept as the prefix it is.
func splitArgs(area []byte, maxArgs int, truncated bool) ([]string, bool) {
	if len(area) == 0 {
		return nil, truncated
	}
	if area[len(area)-1] == 0 {
		area = area[:len(area)-1]
	}
	n := bytes.Count(area, []byte{0}) + 1
	if maxArgs > 0 && n > maxArgs {
		n, truncated = maxArgs, true
	}
	args := make([]string, 0, n)
	for len(args) < n {
		i := bytes.IndexByte(area, 0)
		if i < 0 {
			args = append(args, string(area))
			break
		}
		args = append(args, string(area[:i]))
		area = area[i+1:]
	}
	return args, truncated
}

func decodeExit(b []byte) (rawExit, error) {
	r, err := kernel.DecodeRecord[processExitEvent](b)
	if err != nil {
		return rawExit{}, fmt.Errorf("exit record: %w", err)
	}
	return rawExit{exitCode: r.ExitCode, tsNS: r.TsNs, proc: probe.ToKernelProc(&r.Proc)}, nil
}

func decodeFork(b []byte) (rawFork, error) {
	r, err := kernel.DecodeRecord[processForkEvent](b)
	if err != nil {
		return rawFork{}, fmt.Errorf("fork record: %w", err)
	}
	return rawFork{childPID: r.ChildPid, tsNS: r.TsNs, childStartNS: r.ChildStartNs, proc: probe.ToKernelProc(&r.Proc)}, nil
}
