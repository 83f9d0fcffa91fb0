package open

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/proc"
)

// record builds a ring buffer record as open.bpf.c writes it, from the
// struct bpf2go generated, serialised by encoding/binary.
func record(sc, state uint8, truncated bool, dirLen int, path string, ret int32, flags uint64) []byte {
	h := openOpenHead{Kind: kindOpen, Syscall: sc, PathState: state, PathLen: uint16(len(path)), DirLen: uint16(dirLen),
		Ret: ret, Dirfd: -100, Mode: 0o644, Flags: flags, TsNs: 123456789,
		Proc: openVigilProc{Pid: 4242, Tid: 4243, Ppid: 4000, Uid: 1000, Gid: 100, StartNs: 5e9, CgroupId: 77}}
	if truncated {
		h.PathTruncated = 1
	}
	for i, c := range "cat" {
		h.Proc.Comm[i] = int8(c)
	}
	for i, c := range "bash" {
		h.Proc.ParentComm[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &h); err != nil {
		panic(err)
	}
	return append(append(buf.Bytes(), path...), 0)
}

func TestDecodeOpen(t *testing.T) {
	r, err := decodeOpen(record(2, pathResolved, false, len("/home/u"), "/home/u/notes.txt", 3, 0o2000000|0o100|1))
	if err != nil {
		t.Fatal(err)
	}
	pr := r.proc.Process(proc.Process{})
	if r.syscall != "openat" || r.path != "/home/u/notes.txt" || r.passed != "notes.txt" || pr.PID != 4242 || pr.TID != 4243 ||
		pr.PPID != 4000 || pr.ParentComm != "bash" || pr.StartNS != 5e9 || pr.GID != 100 ||
		pr.UID != 1000 || r.ret != 3 || r.dirfd != -100 || r.mode != 0o644 || pr.Comm != "cat" || pr.CgroupID != 77 || r.tsNS != 123456789 {
		t.Errorf("decoded %+v", r)
	}
	// A directory length of 0 is the root: "/x" relative to "/".
	r, err = decodeOpen(record(1, pathResolved, false, 0, "/x", -2, 0))
	if err != nil || r.passed != "x" || r.ret != -2 {
		t.Errorf("root-relative: %+v %v", r, err)
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        make([]byte, pathOff),
		"kind":         append([]byte{9}, record(2, 0, false, 0, "/a", 0, 0)[1:]...),
		"syscall":      record(7, 0, false, 0, "/a", 0, 0),
		"state":        record(2, 3, false, 0, "/a", 0, 0),
		"dir too long": record(2, pathResolved, false, 5, "/a", 0, 0),
		"dir no slash": record(2, pathResolved, false, 1, "/ab", 0, 0),
		"path beyond":  record(2, 0, false, 0, "/abc", 0, 0)[:pathOff+2],
	} {
		if _, err := decodeOpen(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestFlagNames(t *testing.T) {
	for flags, want := range map[uint64]string{
		0:                      "O_RDONLY",
		0o1 | 0o100 | 0o1000:   "O_WRONLY|O_CREAT|O_TRUNC",
		0o2 | 0o2000000:        "O_RDWR|O_CLOEXEC",
		0o20200000 | 0o2:       "O_RDWR|O_TMPFILE",
		0o200000:               "O_RDONLY|O_DIRECTORY",
		0o4010000:              "O_RDONLY|O_SYNC",
		0o10000:                "O_RDONLY|O_DSYNC",
		0o10000000 | 0o2000000: "O_RDONLY|O_CLOEXEC|O_PATH",
		1 << 40:                "O_RDONLY|0x10000000000",
		3:                      "O_ACCMODE",
	} {
		got := FlagNames(flags)
		if got != want {
			t.Errorf("FlagNames(%#o) = %q, want %q", flags, got, want)
		}
		back, err := ParseFlagNames(got)
		if err != nil || back != flags {
			t.Errorf("ParseFlagNames(%q) = %#o, %v; want %#o", got, back, err, flags)
		}
	}
	if _, err := ParseFlagNames("O_RDONLY|O_BOGUS"); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(c *Config){
		func(c *Config) { c.RingbufSize = 5000 },
		func(c *Config) { c.PIDs = []uint32{0} },
		func(c *Config) { c.Comm = strings.Repeat("c", 16) },
		func(c *Config) { c.PathPrefixes = []string{strings.Repeat("p", 129)} },
		func(c *Config) { c.PathPrefixes = make([]string, 9) },
		func(c *Config) { c.Cgroups = []string{"system.slice"} },
		func(c *Config) { c.Containers = []string{""} },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: invalid config accepted", i)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
}

func TestEncodePrefix(t *testing.T) {
	p := encodePrefix("/etc/ssh/")
	if p.Len != 9 || p.Words[0] != le.Uint64([]byte("/etc/ssh")) || p.Words[1] != uint64('/') {
		t.Errorf("encodePrefix: %+v", p)
	}
}

// FuzzDecodeOpen feeds malformed and truncated records to the decoder: it
// must never panic, and what it accepts must be consistent. `go test` runs
// the seeds; `go test -fuzz FuzzDecodeOpen ./internal/probe/open/` explores.
func FuzzDecodeOpen(f *testing.F) {
	f.Add(record(2, pathResolved, false, 7, "/home/u/notes.txt", 3, 0))
	f.Add(record(1, pathAbsolute, false, 0, "/etc/passwd", -2, 0))
	f.Add(record(4, pathUnresolved, false, 0, "x", 3, 0o100))
	f.Add(record(3, pathAbsolute, true, 0, "/"+strings.Repeat("y", pathBuf-2), -36, 0))
	f.Add(record(2, pathResolved, false, 0, "/x", 0, 0)[:pathOff+1])
	f.Add([]byte{})
	f.Add([]byte{1, 2, 1, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeOpen(b)
		if err != nil {
			return
		}
		if len(r.path) >= pathBuf || len(r.path)+pathOff > len(b) {
			t.Fatalf("path of %d bytes from a %d-byte record", len(r.path), len(b))
		}
		if !strings.HasSuffix(r.path, r.passed) {
			t.Fatalf("passed %q is not a suffix of path %q", r.passed, r.path)
		}
		if r.syscall == "" {
			t.Fatal("accepted without a syscall name")
		}
		_ = FlagNames(r.flags)
	})
}

// FuzzFlagNames: every flag word renders to names that parse back to it.
func FuzzFlagNames(f *testing.F) {
	for _, v := range []uint64{0, 1, 2, 3, 0o100, 0o20200000, 0o4010000, 1 << 63, 0o2101} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v uint64) {
		s := FlagNames(v)
		back, err := ParseFlagNames(s)
		if err != nil || back != v {
			t.Fatalf("FlagNames(%#o) = %q parses to %#o, %v", v, s, back, err)
		}
	})
}
