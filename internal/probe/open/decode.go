package open

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
)

// Record kind and path states, as in open.bpf.c.
const (
	kindOpen = 1

	pathAbsolute   = 0
	pathResolved   = 1
	pathUnresolved = 2
)

const pathBuf = 4096 // most path bytes a record carries, NUL included

// pathOff is where the path follows the fixed part of a record.
var pathOff = int(unsafe.Sizeof(openOpenHead{}))

// syscallNames maps the record's syscall byte to a name.
var syscallNames = [...]string{1: "open", 2: "openat", 3: "openat2", 4: "creat"}

type rawOpen struct {
	syscall       string
	pathState     uint8
	pathTruncated bool
	ret           int32
	dirfd         int32
	mode          uint32
	flags         uint64
	tsNS          uint64
	proc          probe.KernelProc
	path          string // as assembled in the kernel
	passed        string // the argument as passed (a suffix of path when resolved)
}

var (
	le       = binary.LittleEndian
	errShort = errors.New("record too short")
)

// decodeOpen parses one ring buffer record: the fixed part is copied into
// the struct bpf2go generated from open.bpf.c. It never panics, whatever b is.
func decodeOpen(b []byte) (rawOpen, error) {
	var r rawOpen
	if len(b) < pathOff+1 {
		return r, fmt.Errorf("open record: %w (%d bytes)", errShort, len(b))
	}
	h, err := kernel.DecodeRecord[openOpenHead](b)
	if err != nil {
		return r, fmt.Errorf("open record: %w", err)
	}
	if h.Kind != kindOpen {
		return r, fmt.Errorf("open record: unknown kind %d", h.Kind)
	}
	if int(h.Syscall) >= len(syscallNames) || syscallNames[h.Syscall] == "" {
		return r, fmt.Errorf("open record: unknown syscall %d", h.Syscall)
	}
	r.syscall = syscallNames[h.Syscall]
	r.pathState = h.PathState
	if r.pathState > pathUnresolved {
		return r, fmt.Errorf("open record: unknown path state %d", r.pathState)
	}
	r.pathTruncated = h.PathTruncated != 0
	pathLen, dirLen := int(h.PathLen), int(h.DirLen)
	r.ret, r.dirfd, r.mode, r.flags, r.tsNS = h.Ret, h.Dirfd, h.Mode, h.Flags, h.TsNs
	r.proc = probe.ToKernelProc(&h.Proc)
	if pathLen >= pathBuf || pathOff+pathLen >= len(b)+1 {
		return r, fmt.Errorf("open record: path length %d exceeds record (%d bytes)", pathLen, len(b))
	}
	r.path = probe.CString(b[pathOff : pathOff+pathLen])
	r.passed = r.path
	if r.pathState == pathResolved {
		if dirLen >= len(r.path) || r.path[dirLen] != '/' {
			return r, fmt.Errorf("open record: directory length %d does not fit path of %d bytes", dirLen, len(r.path))
		}
		r.passed = r.path[dirLen+1:]
	}
	return r, nil
}

// Open flags on x86_64 (include/uapi/asm-generic/fcntl.h). Multi-bit flags
// come before the flags they include.
var openFlags = []struct {
	bits uint64
	name string
}{
	{0o20200000, "O_TMPFILE"},
	{0o4010000, "O_SYNC"},
	{0o100, "O_CREAT"},
	{0o200, "O_EXCL"},
	{0o400, "O_NOCTTY"},
	{0o1000, "O_TRUNC"},
	{0o2000, "O_APPEND"},
	{0o4000, "O_NONBLOCK"},
	{0o10000, "O_DSYNC"},
	{0o20000, "O_ASYNC"},
	{0o40000, "O_DIRECT"},
	{0o100000, "O_LARGEFILE"},
	{0o200000, "O_DIRECTORY"},
	{0o400000, "O_NOFOLLOW"},
	{0o1000000, "O_NOATIME"},
	{0o2000000, "O_CLOEXEC"},
	{0o10000000, "O_PATH"},
}

// FlagNames renders open flags as O_RDONLY|O_CREAT|...; bits it does not
// know are appended in hex.
func FlagNames(flags uint64) string {
	var b strings.Builder
	switch flags & 3 {
	case 0:
		b.WriteString("O_RDONLY")
	case 1:
		b.WriteString("O_WRONLY")
	case 2:
		b.WriteString("O_RDWR")
	default:
		b.WriteString("O_ACCMODE")
	}
	rest := flags &^ 3
	for _, f := range openFlags {
		if rest&f.bits == f.bits {
			b.WriteString("|" + f.name)
			rest &^= f.bits
		}
	}
	if rest != 0 {
		b.WriteString("|0x" + strconv.FormatUint(rest, 16))
	}
	return b.String()
}

// ParseFlagNames is FlagNames' inverse, for tests and filters.
func ParseFlagNames(s string) (uint64, error) {
	var v uint64
	for i, part := range strings.Split(s, "|") {
		switch {
		case i == 0 && part == "O_RDONLY":
		case i == 0 && part == "O_WRONLY":
			v |= 1
		case i == 0 && part == "O_RDWR":
			v |= 2
		case i == 0 && part == "O_ACCMODE":
			v |= 3
		case strings.HasPrefix(part, "0x"):
			x, err := strconv.ParseUint(part[2:], 16, 64)
			if err != nil {
				return 0, fmt.Errorf("flag %q: %w", part, err)
			}
			v |= x
		default:
			found := false
			for _, f := range openFlags {
				if f.name == part {
					v |= f.bits
					found = true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("unknown open flag %q", part)
			}
		}
	}
	return v, nil
}
