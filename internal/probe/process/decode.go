package process

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Record kinds, as in process.bpf.c.
const (
	kindExec       = 1
	kindExit       = 2
	kindFork       = 3
	kindExecFailed = 4
)

// Byte offsets of the records written by process.bpf.c; layout_test.go
// checks them against the structs bpf2go generated from the same source.
const (
	execHeaderSize = 584 // offset of args
	exitSize       = 56
	forkSize       = 56
	commOff        = 56
	filenameOff    = 72
	filenameBuf    = 512
)

var le = binary.LittleEndian

type rawExec struct {
	failed        bool
	argsTruncated bool
	pid, tid      uint32
	ppid          uint32
	uid, gid      uint32
	retval        int32
	tsNS          uint64
	startNS       uint64
	cgroupID      uint64
	comm          string
	filename      string
	args          []string
}

type rawExit struct {
	pid, ppid uint32
	exitCode  uint32
	tsNS      uint64
	startNS   uint64
	cgroupID  uint64
	comm      string
}

type rawFork struct {
	parentPID, childPID uint32
	uid                 uint32
	tsNS                uint64
	childStartNS        uint64
	cgroupID            uint64
	comm                string
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
	if len(b) < execHeaderSize {
		return e, fmt.Errorf("exec record: %w (%d bytes)", errShort, len(b))
	}
	e.failed = b[0] == kindExecFailed
	e.argsTruncated = b[1] != 0
	fnLen := int(le.Uint16(b[2:]))
	argsLen := int(le.Uint32(b[4:]))
	e.pid = le.Uint32(b[8:])
	e.tid = le.Uint32(b[12:])
	e.ppid = le.Uint32(b[16:])
	e.uid = le.Uint32(b[20:])
	e.gid = le.Uint32(b[24:])
	e.retval = int32(le.Uint32(b[28:]))
	e.tsNS = le.Uint64(b[32:])
	e.startNS = le.Uint64(b[40:])
	e.cgroupID = le.Uint64(b[48:])
	e.comm = cString(b[commOff:filenameOff])
	if fnLen > filenameBuf {
		fnLen = filenameBuf
	}
	e.filename = cString(b[filenameOff : filenameOff+fnLen])
	if argsLen > len(b)-execHeaderSize {
		return e, fmt.Errorf("exec record: args length %d exceeds record (%d bytes)", argsLen, len(b))
	}
	e.args, e.argsTruncated = splitArgs(b[execHeaderSize:execHeaderSize+argsLen], maxArgs, e.argsTruncated)
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
	var e rawExit
	if len(b) < exitSize {
		return e, fmt.Errorf("exit record: %w (%d bytes)", errShort, len(b))
	}
	e.pid = le.Uint32(b[4:])
	e.ppid = le.Uint32(b[8:])
	e.exitCode = le.Uint32(b[12:])
	e.tsNS = le.Uint64(b[16:])
	e.startNS = le.Uint64(b[24:])
	e.cgroupID = le.Uint64(b[32:])
	e.comm = cString(b[40:56])
	return e, nil
}

func decodeFork(b []byte) (rawFork, error) {
	var e rawFork
	if len(b) < forkSize {
		return e, fmt.Errorf("fork record: %w (%d bytes)", errShort, len(b))
	}
	e.parentPID = le.Uint32(b[4:])
	e.childPID = le.Uint32(b[8:])
	e.uid = le.Uint32(b[12:])
	e.tsNS = le.Uint64(b[16:])
	e.childStartNS = le.Uint64(b[24:])
	e.cgroupID = le.Uint64(b[32:])
	e.comm = cString(b[40:56])
	return e, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
