package gobin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/gobin/gobintest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gobintest.Cleanup()
	os.Exit(code)
}

// tlsProg uses crypto/tls over a *net.TCPConn, so the binary holds the
// functions and the itab the Go TLS probe looks for.
const tlsProg = `package main

import (
	"crypto/tls"
	"fmt"
	"net"
)

func main() {
	c, err := net.Dial("tcp", "127.0.0.1:1")
	fmt.Println(err)
	if c != nil {
		t := tls.Client(c, &tls.Config{})
		t.Write([]byte("x"))
		b := make([]byte, 10)
		t.Read(b)
	}
}
`

var funcs = []string{"crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write", "net.(*conn).Close", "main.main"}

const tcpConnItab = "go:itab.*net.TCPConn,net.Conn"

// The methods of net.Conn, in order; the program calls these through it.
var netConnMethods = []string{"Close", "", "Read", "", "", "", "", "Write"}

func goTool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append([]string{"tool"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go tool %s: %v", args[0], err)
	}
	return string(out)
}

// nmAddrs is `go tool nm`'s address of each wanted symbol.
func nmAddrs(t *testing.T, bin string, want ...string) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	for _, line := range strings.Split(goTool(t, "nm", bin), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		name := strings.Join(f[2:], " ")
		if slices.Contains(want, name) {
			a, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			got[name] = a
		}
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Fatalf("go tool nm %s: no %s", bin, w)
		}
	}
	return got
}

var objdumpLine = regexp.MustCompile(`^\s*\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(\S+)`)

// objdumpRets is the addresses `go tool objdump` shows a RET at in fn.
func objdumpRets(t *testing.T, bin, fn string) []uint64 {
	t.Helper()
	var rets []uint64
	for _, line := range strings.Split(goTool(t, "objdump", "-s", "^"+regexp.QuoteMeta(fn)+"$", bin), "\n") {
		m := objdumpLine.FindStringSubmatch(line)
		if m == nil || m[2] != "RET" {
			continue
		}
		a, _ := strconv.ParseUint(m[1], 16, 64)
		rets = append(rets, a)
	}
	if len(rets) == 0 {
		t.Fatalf("go tool objdump shows no RET in %s", fn)
	}
	return rets
}

// Function entries and RETs equal what go tool nm and objdump say, for both
// toolchains, stripped or not, position-independent (where the itab
// pointers are relocations, zero in the file) and linked by the C linker
// (where C code comes first in .text).
func TestFunctionsReturnsItab(t *testing.T) {
	for _, v := range []gobintest.Variant{{}, {Toolchain: gobintest.OldToolchain}, {PIE: true}, {External: true}} {
		tc := v.Toolchain
		full := gobintest.Build(t, tlsProg, v)
		v.Stripped = true
		stripped := gobintest.Build(t, tlsProg, v)
		wantVersion := tc
		if tc == "" {
			wantVersion = runtime.Version()
		}
		nm := nmAddrs(t, full, append(slices.Clone(funcs), tcpConnItab)...)
		rets := map[string][]uint64{}
		for _, fn := range funcs {
			rets[fn] = objdumpRets(t, full, fn)
		}
		for _, bin := range []string{full, stripped} {
			b, err := Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			if b.GoVersion != wantVersion {
				t.Errorf("%s: Go version %q, want %q", bin, b.GoVersion, wantVersion)
			}
			if !b.AtLeast(1, 17) || b.AtLeast(1, 99) {
				t.Errorf("%s: AtLeast wrong for %s", bin, b.GoVersion)
			}
			raw, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range funcs {
				fn, err := b.Func(name)
				if err != nil {
					t.Fatal(err)
				}
				// -s -w removes symbols and DWARF, not code: the stripped
				// twin's text is the same.
				if fn.Entry != nm[name] {
					t.Errorf("%s %s: entry %#x, go tool nm says %#x", wantVersion, name, fn.Entry, nm[name])
				}
				got, err := b.Returns(fn)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, rets[name]) {
					t.Errorf("%s %s: RETs %#x, go tool objdump says %#x", wantVersion, name, got, rets[name])
				}
				for _, r := range got {
					off, err := b.FileOffset(r)
					if err != nil {
						t.Fatal(err)
					}
					if raw[off] != 0xc3 {
						t.Errorf("%s: byte at file offset %#x (RET at %#x) is %#x, not 0xc3", name, off, r, raw[off])
					}
				}
			}
			methods := make([]string, len(netConnMethods))
			for i, m := range netConnMethods {
				if m != "" {
					methods[i] = "net.(*TCPConn)." + m
				}
			}
			itab, err := b.Itab(methods)
			if err != nil {
				t.Fatal(err)
			}
			if bin == full && itab != nm[tcpConnItab] {
				t.Errorf("%s: itab %#x, go tool nm says %#x", wantVersion, itab, nm[tcpConnItab])
			}
			if bin == stripped {
				// The stripped twin's read-only data moves by the length of
				// its longer build flags; the itab is still in .rodata and
				// is the only one listing exactly those methods.
				if _, err := b.FileOffset(itab); err != nil {
					t.Error(err)
				}
				if _, err := b.FieldOffset("crypto/tls.Conn", "conn"); err == nil {
					t.Errorf("%s: stripped binary has DWARF", bin)
				}
			}
			if _, err := b.Func("crypto/tls.(*Conn).NoSuch"); err == nil || !strings.Contains(err.Error(), "no function crypto/tls.(*Conn).NoSuch") {
				t.Errorf("missing function: %v", err)
			}
			b.Close()
		}
	}
}

func TestFieldOffset(t *testing.T) {
	b, err := Open(gobintest.Build(t, tlsProg, gobintest.Variant{}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, c := range []struct {
		typ, field string
		want       uint64
	}{{"crypto/tls.Conn", "conn", 0}, {"crypto/tls.Conn", "isClient", 16}, {"internal/poll.FD", "fdmu", 0}} {
		got, err := b.FieldOffset(c.typ, c.field)
		if err != nil || got != c.want {
			t.Errorf("%s.%s: %d %v, want %d", c.typ, c.field, got, err, c.want)
		}
	}
	if _, err := b.FieldOffset("crypto/tls.Conn", "nosuch"); err == nil || !strings.Contains(err.Error(), "no field nosuch") {
		t.Errorf("missing field: %v", err)
	}
	if _, err := b.FieldOffset("crypto/tls.NoSuch", "x"); err == nil {
		t.Error("missing type: no error")
	}
}

func TestNotGo(t *testing.T) {
	sh, err := exec.LookPath("sh") // dash or bash: C programs
	if err != nil {
		t.Skip("no sh")
	}
	if _, err := Open(sh); !errors.Is(err, ErrNotGo) {
		t.Errorf("%s: %v, want ErrNotGo", sh, err)
	}
	txt := filepath.Join(t.TempDir(), "x.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	if _, err := Open(txt); err == nil || errors.Is(err, ErrNotGo) || !strings.Contains(err.Error(), "not an ELF file") {
		t.Errorf("text file: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestOtherArchRefused(t *testing.T) {
	b, err := Open(gobintest.Build(t, "package main\n\nfunc main() { println(1) }\n", gobintest.Variant{GOARCH: "arm64", Stripped: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fn, err := b.Func("main.main")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Returns(fn); err == nil || !strings.Contains(err.Error(), "EM_AARCH64; only x86-64 is supported") {
		t.Errorf("arm64: %v", err)
	}
}

func TestAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"go1.17": true, "go1.16.15": false, "go1.22rc1": true, "go1.9": false, "go2.0": true, "devel go1.27-abc": true, "": false} {
		if got := (&Binary{GoVersion: v}).AtLeast(1, 17); got != want {
			t.Errorf("AtLeast(%q, 1.17) = %v", v, got)
		}
	}
}
