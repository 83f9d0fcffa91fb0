package l7

import (
	"bytes"
	"encoding/base64"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
)

func TestRecordLayout(t *testing.T) {
	if err := probe.CheckKernelProc(reflect.TypeOf(l7VigilProc{})); err != nil {
		t.Error(err)
	}
	if headSize != 144 || headSize%8 != 0 {
		t.Errorf("fixed part is %d bytes, want 144 (8-aligned so data follows the header)", headSize)
	}
}

// record builds a ring record as the kernel writes it.
func rawRecord(h l7ConnData, data []byte) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h))
	return append(append([]byte(nil), b...), data...)
}

func TestDecodeRecord(t *testing.T) {
	h := l7ConnData{TsNs: 5, Generation: 9, Fd: 7, Len: 1000, Captured: 4, Dir: dirWrite, Role: roleServer,
		Flags: flagTruncated, Syscall: 6, Family: afInet6, Sport: 80, Dport: 51000}
	h.Proc.Pid = 42
	copy(h.Saddr[:], []byte{15: 1})                                           // ::1
	copy(h.Daddr[:], []byte{10: 0xff, 11: 0xff, 12: 10, 13: 0, 14: 0, 15: 2}) // ::ffff:10.0.0.2
	r, err := decodeRecord(rawRecord(h, []byte("\x00GET")), newRedactors(4))
	if err != nil {
		t.Fatal(err)
	}
	e := r.event
	want := ConnData{Conn: ConnID{PID: 42, FD: 7, Generation: 9}, Direction: "write", Role: "server", Family: "ipv6",
		SAddr: "::1", SPort: 80, DAddr: "10.0.0.2", DPort: 51000, Syscall: "writev", Length: 1000, Captured: 4,
		Truncated: true, DataB64: base64.StdEncoding.EncodeToString([]byte("\x00GET")), Data: []byte("\x00GET")}
	if !reflect.DeepEqual(e, want) || r.tsNS != 5 {
		t.Fatalf("decoded %+v\nwant    %+v", e, want)
	}

	for name, mut := range map[string]func(*l7ConnData){
		"direction": func(h *l7ConnData) { h.Dir = 3 },
		"role":      func(h *l7ConnData) { h.Role = 0 },
		"address":   func(h *l7ConnData) { h.Family = 1 },
		"syscall":   func(h *l7ConnData) { h.Syscall = 12 },
		"tls flag":  func(h *l7ConnData) { h.Flags |= flagTLS },
		"exceed":    func(h *l7ConnData) { h.Captured = 5 },
	} {
		bad := h
		mut(&bad)
		if _, err := decodeRecord(rawRecord(bad, []byte("\x00GET")), newRedactors(4)); err == nil || !strings.Contains(err.Error(), "conn_data record") {
			t.Errorf("%s: error %v", name, err)
		}
	}
	// Whatever the bytes, no panic.
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.Intn(400))
		rng.Read(b)
		_, _ = decodeRecord(b, newRedactors(4))
	}
}

func TestPrintable(t *testing.T) {
	if got := Printable([]byte("GET /\r\n\x00\xffabc"), 9); got != "GET /...." {
		t.Errorf("got %q", got)
	}
	if got := Printable(nil, 9); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(defaultsYAML, []byte("enabled: false")) {
		t.Error("the probe must stay off by default")
	}
}

func TestProgramsUseTracepointsOnly(t *testing.T) {
	spec, err := loadL7()
	if err != nil {
		t.Fatal(err)
	}
	defs := Programs()
	if len(defs) != 5+2*len(dataSyscalls) || len(spec.Programs) != len(defs)+len(goTLSPrograms)+len(opensslPrograms()) {
		t.Fatalf("%d program defs, %d programs in the object", len(defs), len(spec.Programs))
	}
	for _, d := range defs {
		if len(d.Hooks) != 1 || d.Hooks[0].Kind != kernel.Tracepoint || spec.Programs[d.Hooks[0].Program] == nil {
			t.Errorf("%s: hooks %+v", d.Name, d.Hooks)
		}
	}
	for _, name := range goTLSPrograms { // attached at run time, per Go binary
		if ps := spec.Programs[name]; ps == nil || ps.SectionName != "uprobe" {
			t.Errorf("%s: %+v, want a uprobe program", name, ps)
		}
	}
}

func TestParseHexAddr(t *testing.T) {
	a, port, ok := parseHexAddr("0100007F:1F90")
	if !ok || port != 8080 || !bytes.Equal(a[:4], []byte{127, 0, 0, 1}) {
		t.Errorf("ipv4: %v %d %v", a, port, ok)
	}
	a, port, ok = parseHexAddr("00000000000000000000000001000000:0050")
	if !ok || port != 80 || a != [16]byte{15: 1} {
		t.Errorf("ipv6: %v %d %v", a, port, ok)
	}
	for _, bad := range []string{"", "0100007F", "0100007G:1F90", "0100007F:XYZ", "01007F:1F90"} {
		if _, _, ok := parseHexAddr(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
