package l7

import (
	"encoding/base64"
	"strings"
	"testing"
)

// decodeChunks decodes one record per chunk on (fd, dir, syscall) and
// returns the data and base64 text each record left the decoder with.
func decodeChunks(t *testing.T, rs *redactors, fd uint32, dir, sc uint8, chunks ...string) (data, b64 string) {
	t.Helper()
	for _, c := range chunks {
		h := l7ConnData{Generation: 3, Fd: fd, Len: uint32(len(c)), Captured: uint32(len(c)), Dir: dir, Role: roleClient, Syscall: sc, Family: afInet}
		if sc >= 16 {
			h.Flags = flagTLS
		}
		h.Proc.Pid = 42
		r, err := decodeRecord(rawRecord(h, []byte(c)), rs)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(r.event.DataB64)
		if err != nil {
			t.Fatal(err)
		}
		data += string(r.event.Data)
		b64 += string(raw)
	}
	return data, b64
}

func TestDecodeRedacts(t *testing.T) {
	rs := newRedactors(16)
	req := "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer secret-XYZ\r\nCookie: s=secret-XYZ\r\n\r\n"
	want := "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: *****************\r\nCookie: ************\r\n\r\n"
	// Split inside the Authorization name, on the same stream, with records
	// of the other direction and of TLS plaintext (OpenSSL, Go) of the same
	// connection in between: each stream keeps its own state.
	cut := strings.Index(req, "rization")
	data1, b641 := decodeChunks(t, rs, 7, dirWrite, 5, req[:cut])
	otherData, _ := decodeChunks(t, rs, 7, dirRead, 1, "HTTP/1.1 200 OK\r\nSet-")
	tlsData, _ := decodeChunks(t, rs, 7, dirWrite, 17, "rization: plain\r\n")
	goData, _ := decodeChunks(t, rs, 7, dirWrite, 19, "rization: go\r\n")
	data2, b642 := decodeChunks(t, rs, 7, dirWrite, 5, req[cut:])
	if got := data1 + data2; got != want {
		t.Errorf("Data %q, want %q", got, want)
	}
	if got := b641 + b642; got != want {
		t.Errorf("base64 data %q, want %q", got, want)
	}
	if otherData != "HTTP/1.1 200 OK\r\nSet-" || tlsData != "rization: plain\r\n" || goData != "rization: go\r\n" {
		t.Errorf("other streams changed: %q %q %q", otherData, tlsData, goData)
	}
	if n := rs.redacted.Load(); n != 2 {
		t.Errorf("%d redacted, want 2", n)
	}
}

func TestRedactorsBounded(t *testing.T) {
	rs := newRedactors(4)
	for fd := uint32(0); fd < 10; fd++ {
		// Each stream leaves its state inside a header block.
		decodeChunks(t, rs, fd, dirWrite, 5, "GET / HTTP/1.1\r\nCookie: ")
	}
	if len(rs.slots) != 4 || len(rs.index) != 4 || rs.evicted.Load() != 6 {
		t.Fatalf("%d slots, %d indexed, %d evicted; want 4, 4, 6", len(rs.slots), len(rs.index), rs.evicted.Load())
	}
	// fd 9 (most recent) kept its state: its value goes on being redacted.
	// fd 0 was evicted: its state restarts, and a lone value is not a header.
	if d, _ := decodeChunks(t, rs, 9, dirWrite, 5, "abc\r\n"); d != "***\r\n" {
		t.Errorf("fd 9: %q", d)
	}
	if d, _ := decodeChunks(t, rs, 0, dirWrite, 5, "abc\r\n"); d != "abc\r\n" {
		t.Errorf("fd 0: %q", d)
	}
	// Now fd 0, 9, 8, 7 (7 the oldest). Touching fd 8 leaves 7 the oldest:
	// the next new stream evicts it.
	decodeChunks(t, rs, 8, dirWrite, 5, "x")
	decodeChunks(t, rs, 100, dirWrite, 5, "x")
	if _, ok := rs.index[streamKey{conn: ConnID{PID: 42, FD: 7, Generation: 3}, write: true}]; ok {
		t.Error("fd 7 still cached")
	}
	if _, ok := rs.index[streamKey{conn: ConnID{PID: 42, FD: 8, Generation: 3}, write: true}]; !ok {
		t.Error("fd 8 evicted")
	}
}
