package process

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// Records are built from the structs bpf2go generated from process.bpf.c,
// serialised by encoding/binary: an encoder independent of the decoder's
// memory copy. Field offsets in the fuzz checks come from those structs too.

var (
	procOff    = unsafe.Offsetof(processExecHead{}.Proc)
	exitSize   = int(unsafe.Sizeof(processExitEvent{}))
	forkSize   = int(unsafe.Sizeof(processForkEvent{}))
	le         = binary.LittleEndian
	testParent = "bash"
)

func setComm(dst *[16]int8, s string) {
	for i := 0; i < len(s) && i < 15; i++ {
		dst[i] = int8(s[i])
	}
}

func fillBytes(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
}

func testProc(pid uint32, comm string) processVigilProc {
	v := processVigilProc{Pid: pid, Tid: pid + 1, Ppid: 1, Uid: 1000, Gid: 100, StartNs: 123000000, CgroupId: 77}
	setComm(&v.Comm, comm)
	setComm(&v.ParentComm, testParent)
	return v
}

func buildExec(t testing.TB, kind uint8, filename string, args string, truncated bool) []byte {
	ev := processExecEvent{H: processExecHead{Kind: kind, TsNs: 123456789, Proc: testProc(4242, "bash")}}
	if kind == kindExecFailed {
		ev.H.Retval = -2
	}
	if truncated {
		ev.H.ArgsTruncated = 1
	}
	fillBytes(ev.H.Filename[:], filename)
	ev.H.FilenameLen = uint16(len(filename))
	fillBytes(ev.Args[:], args)
	ev.H.ArgsLen = uint32(len(args))
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:execHeadSize+len(args)]
}

func buildExit(t testing.TB, pid, code uint32) []byte {
	ev := processExitEvent{Kind: kindExit, ExitCode: code, TsNs: 2e9, Proc: testProc(pid, "sleep")}
	ev.Proc.StartNs, ev.Proc.CgroupId = 1e9, 5
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func buildFork(t testing.TB, parent, child uint32) []byte {
	ev := processForkEvent{Kind: kindFork, ChildPid: child, TsNs: 9, ChildStartNs: 8, Proc: testProc(parent, "make")}
	ev.Proc.Uid, ev.Proc.CgroupId = 3, 6
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeExec(t *testing.T) {
	b := buildExec(t, kindExec, "/usr/bin/ls", "ls\x00-l\x00/tmp\x00", false)
	e, err := decodeExec(b, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := probe.KernelProc{PID: 4242, TID: 4243, PPID: 1, UID: 1000, GID: 100, StartNS: 123000000, CgroupID: 77}
	copy(want.Comm[:], "bash")
	copy(want.ParentComm[:], testParent)
	if e.failed || e.argsTruncated || e.proc != want || e.retval != 0 || e.tsNS != 123456789 || e.filename != "/usr/bin/ls" {
		t.Errorf("decoded %+v", e)
	}
	if !slices.Equal(e.args, []string{"ls", "-l", "/tmp"}) {
		t.Errorf("args %q", e.args)
	}

	f, err := decodeExec(buildExec(t, kindExecFailed, "/nope", "/nope\x00x\x00", false), 64)
	if err != nil || !f.failed || f.retval != -2 || !slices.Equal(f.args, []string{"/nope", "x"}) {
		t.Errorf("failed exec %+v, %v", f, err)
	}
}

func TestSplitArgs(t *testing.T) {
	cases := []struct {
		area   string
		max    int
		in     bool
		want   []string
		wantTr bool
	}{
		{"", 64, false, nil, false},
		{"", 64, true, nil, true},
		{"\x00", 64, false, []string{""}, false},
		{"a\x00", 64, false, []string{"a"}, false},
		{"a\x00\x00", 64, false, []string{"a", ""}, false},
		{"a\x00\x00b\x00\x00\x00", 64, false, []string{"a", "", "b", "", ""}, false},
		{"a\x00bc", 64, true, []string{"a", "bc"}, true}, // cut inside "bcd"
		{"a\x00b\x00c\x00", 2, false, []string{"a", "b"}, true},
		{"a\x00b\x00", 2, false, []string{"a", "b"}, false},
	}
	for _, c := range cases {
		got, tr := splitArgs([]byte(c.area), c.max, c.in)
		if !slices.Equal(got, c.want) || tr != c.wantTr {
			t.Errorf("splitArgs(%q, %d, %v) = %q, %v; want %q, %v", c.area, c.max, c.in, got, tr, c.want, c.wantTr)
		}
	}
}

func TestDecodeExitFork(t *testing.T) {
	x, err := decodeExit(buildExit(t, 99, 7<<8))
	if err != nil || x.proc.PID != 99 || x.proc.PPID != 1 || x.exitCode != 7<<8 || x.tsNS != 2e9 || x.proc.StartNS != 1e9 ||
		x.proc.CgroupID != 5 || x.proc.Command() != "sleep" || x.proc.Process(proc.Process{}).ParentComm != testParent {
		t.Errorf("exit %+v %v", x, err)
	}
	f, err := decodeFork(buildFork(t, 10, 11))
	if err != nil || f.proc.PID != 10 || f.childPID != 11 || f.proc.UID != 3 || f.tsNS != 9 || f.childStartNS != 8 || f.proc.CgroupID != 6 || f.proc.Command() != "make" {
		t.Errorf("fork %+v %v", f, err)
	}
}

func TestDecodeShort(t *testing.T) {
	if _, err := decodeExec(make([]byte, execHeadSize-1), 64); err == nil {
		t.Error("short exec record decoded")
	}
	if _, err := decodeExit(make([]byte, exitSize-1)); err == nil {
		t.Error("short exit record decoded")
	}
	if _, err := decodeFork(make([]byte, forkSize-1)); err == nil {
		t.Error("short fork record decoded")
	}
	b := buildExec(t, kindExec, "/x", "x\x00", false)
	le.PutUint32(b[4:], 1<<20) // args_len beyond the record
	if _, err := decodeExec(b, 64); err == nil || !strings.Contains(err.Error(), "exceeds record") {
		t.Errorf("args_len past the record: %v", err)
	}
	if _, err := recordKind(nil); err == nil {
		t.Error("empty record has a kind")
	}
}

func TestDecodeExitCode(t *testing.T) {
	cases := []struct {
		code        uint32
		status, sig int
		core        bool
	}{
		{0, 0, 0, false},
		{7 << 8, 7, 0, false},
		{255 << 8, 255, 0, false},
		{9, 0, 9, false},
		{0x80 | 11, 0, 11, true},
	}
	for _, c := range cases {
		s, sig, core := decodeExitCode(c.code)
		if s != c.status || sig != c.sig || core != c.core {
			t.Errorf("decodeExitCode(%#x) = %d, %d, %v", c.code, s, sig, core)
		}
	}
	if errnoName(2) != "ENOENT" || errnoName(13) != "EACCES" || errnoName(0) != "0" || errnoName(4000) != "E4000" {
		t.Errorf("errnoName: %s %s %s %s", errnoName(2), errnoName(13), errnoName(0), errnoName(4000))
	}
}

// Fuzzing: the decoders face whatever the ring buffer holds. They must never
// panic, never read outside the record, and what they return must be what
// the bytes say. The seeds run as ordinary tests; `go test -fuzz
// FuzzDecodeExec ./internal/probe/process` explores further.

func FuzzDecodeExec(f *testing.F) {
	f.Add(buildExec(f, kindExec, "/usr/bin/ls", "ls\x00-l\x00", false), 64)
	f.Add(buildExec(f, kindExecFailed, "/nope", "/nope\x00\x00\x00", false), 2)
	f.Add(buildExec(f, kindExec, strings.Repeat("p", 511), strings.Repeat("a\x00", 100), true), 0)
	f.Add(make([]byte, execHeadSize), 1)
	f.Add([]byte{kindExec}, 64)
	f.Fuzz(func(t *testing.T, b []byte, maxArgs int) {
		e, err := decodeExec(b, maxArgs)
		if err != nil {
			return
		}
		if e.proc.PID != le.Uint32(b[procOff:]) || e.proc.CgroupID != le.Uint64(b[procOff+32:]) || e.failed != (b[0] == kindExecFailed) {
			t.Fatalf("header fields do not match the bytes")
		}
		if len(e.filename) > filenameBuf || len(e.proc.Command()) > 16 {
			t.Fatalf("filename %d / comm %d bytes exceed their buffers", len(e.filename), len(e.proc.Command()))
		}
		if maxArgs > 0 && len(e.args) > maxArgs {
			t.Fatalf("%d args kept with max_args %d", len(e.args), maxArgs)
		}
		area := b[execHeadSize : execHeadSize+int(le.Uint32(b[4:]))]
		if joined := strings.Join(e.args, "\x00"); !bytes.HasPrefix(area, []byte(joined)) {
			t.Fatalf("args %q are not a prefix of the area %q", e.args, area)
		}
		if b[1] != 0 && !e.argsTruncated {
			t.Fatal("the kernel's truncation flag was lost")
		}
	})
}

func FuzzDecodeExit(f *testing.F) {
	f.Add(buildExit(f, 1, 0))
	f.Add(buildExit(f, 1<<22, 0x80|6))
	f.Add([]byte{kindExit, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeExit(b)
		if err != nil {
			if len(b) >= exitSize {
				t.Fatalf("full-size record rejected: %v", err)
			}
			return
		}
		po := unsafe.Offsetof(processExitEvent{}.Proc)
		if x.exitCode != le.Uint32(b[4:]) || x.proc.PID != le.Uint32(b[po:]) || x.proc.StartNS != le.Uint64(b[po+24:]) || len(x.proc.Command()) > 16 {
			t.Fatal("fields do not match the bytes")
		}
		s, sig, _ := decodeExitCode(x.exitCode)
		if s < 0 || s > 255 || sig < 0 || sig > 127 {
			t.Fatalf("status %d signal %d out of range", s, sig)
		}
	})
}

func FuzzDecodeFork(f *testing.F) {
	f.Add(buildFork(f, 1, 2))
	f.Add(make([]byte, forkSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeFork(b)
		if err != nil {
			if len(b) >= forkSize {
				t.Fatalf("full-size record rejected: %v", err)
			}
			return
		}
		po := unsafe.Offsetof(processForkEvent{}.Proc)
		if x.proc.PID != le.Uint32(b[po:]) || x.childPID != le.Uint32(b[4:]) || x.childStartNS != le.Uint64(b[16:]) || len(x.proc.Command()) > 16 {
			t.Fatal("fields do not match the bytes")
		}
	})
}
