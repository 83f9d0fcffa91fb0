package http

import (
	"bytes"
	"strings"
	"testing"
)

// redactAll runs one fresh Redactor over the chunks and returns their
// concatenation and the count it reported.
func redactAll(chunks ...string) (string, int) {
	var r Redactor
	var out []byte
	n := 0
	for _, c := range chunks {
		b := []byte(c)
		n += r.Redact(b)
		out = append(out, b...)
	}
	return string(out), n
}

const (
	secretReq = "GET /api/items?id=7 HTTP/1.1\r\nHost: shop:8080\r\nAuthorization: Bearer secret-XYZ\r\n" +
		"User-Agent: curl/7.88\r\nCookie: s=secret-XYZ; t=2\r\nAccept: */*\r\n\r\n"
	secretReqWant = "GET /api/items?id=7 HTTP/1.1\r\nHost: shop:8080\r\nAuthorization: *****************\r\n" +
		"User-Agent: curl/7.88\r\nCookie: *****************\r\nAccept: */*\r\n\r\n"
)

func TestRedactRequest(t *testing.T) {
	got, n := redactAll(secretReq)
	if got != secretReqWant || n != 2 {
		t.Fatalf("got %q (%d redacted), want %q (2)", got, n, secretReqWant)
	}
}

// TestRedactEverySplit cuts the request in two, and in three, at every
// offset: the result must always equal the single-chunk one.
func TestRedactEverySplit(t *testing.T) {
	for i := 0; i <= len(secretReq); i++ {
		if got, n := redactAll(secretReq[:i], secretReq[i:]); got != secretReqWant || n != 2 {
			t.Fatalf("split at %d: got %q (%d redacted)", i, got, n)
		}
		for j := i; j <= len(secretReq); j++ {
			if got, n := redactAll(secretReq[:i], secretReq[i:j], secretReq[j:]); got != secretReqWant || n != 2 {
				t.Fatalf("split at %d, %d: got %q (%d redacted)", i, j, got, n)
			}
		}
	}
	// Byte by byte.
	chunks := make([]string, len(secretReq))
	for i := range secretReq {
		chunks[i] = secretReq[i : i+1]
	}
	if got, n := redactAll(chunks...); got != secretReqWant || n != 2 {
		t.Fatalf("byte by byte: got %q (%d redacted)", got, n)
	}
}

func TestRedactCases(t *testing.T) {
	for _, c := range []struct {
		name   string
		chunks []string
		want   string
		n      int
	}{
		{"case-insensitive names", []string{"POST /x HTTP/1.0\r\nAUTHORIZATION: Basic YTpi\r\ncookie:a=b\r\nx-api-KEY:\t k\r\nX-Custom-Token: t1\r\n\r\n"},
			"POST /x HTTP/1.0\r\nAUTHORIZATION: **********\r\ncookie:***\r\nx-api-KEY:\t *\r\nX-Custom-Token: **\r\n\r\n", 4},
		{"response, several Set-Cookie", []string{"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\nSet-Cookie: b=2; Path=/\r\n\r\nok"},
			"HTTP/1.1 200 OK\r\nSet-Cookie: ***\r\nContent-Length: 2\r\nSet-Cookie: ***********\r\n\r\nok", 2},
		{"value cut by truncation, continued in the next record", []string{"GET / HTTP/1.1\r\nCookie: abc", "defgh\r\nHost: x\r\n\r\n"},
			"GET / HTTP/1.1\r\nCookie: ********\r\nHost: x\r\n\r\n", 1},
		{"long cookie cut by truncation, the next record the next request", []string{"GET /a HTTP/1.1\r\nCookie: aaaa", "GET /b HTTP/1.1\r\nHost: h\r\nCookie: bb\r\n\r\n"},
			"GET /a HTTP/1.1\r\nCookie: ****GET /b HTTP/1.1\r\nHost: h\r\nCookie: **\r\n\r\n", 2},
		{"response cut inside a header, the next record the next response", []string{"HTTP/1.1 200 OK\r\nServer: ngi", "HTTP/1.1 404 Not Found\r\nSet-Cookie: x\r\n\r\n"},
			"HTTP/1.1 200 OK\r\nServer: ngiHTTP/1.1 404 Not Found\r\nSet-Cookie: *\r\n\r\n", 1},
		{"body ending in CR, the next request in the next write", []string{"POST / HTTP/1.1\r\n\r\nab\r\n\r", "GET / HTTP/1.1\r\nCookie: c\r\n\r\n"},
			"POST / HTTP/1.1\r\n\r\nab\r\n\rGET / HTTP/1.1\r\nCookie: *\r\n\r\n", 1},
		{"name in one read, value in the next", []string{"GET / HTTP/1.1\r\nProxy-Authorization:", " Basic zz\r\n\r\n"},
			"GET / HTTP/1.1\r\nProxy-Authorization: ********\r\n\r\n", 1},
		{"body lines are not headers", []string{"POST /f HTTP/1.1\r\nContent-Length: 38\r\n\r\nAuthorization: x\r\nCookie: y\r\nfoo: bar\r\n"},
			"POST /f HTTP/1.1\r\nContent-Length: 38\r\n\r\nAuthorization: x\r\nCookie: y\r\nfoo: bar\r\n", 0},
		{"body in its own write", []string{"POST /f HTTP/1.1\r\nContent-Length: 19\r\n\r\n", "Authorization: x\r\n\r\n"},
			"POST /f HTTP/1.1\r\nContent-Length: 19\r\n\r\nAuthorization: x\r\n\r\n", 0},
		{"keep-alive: the next request in the next write", []string{"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "GET /g HTTP/1.1\r\nCookie: c\r\n\r\n"},
			"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /g HTTP/1.1\r\nCookie: *\r\n\r\n", 1},
		{"pipelined in one write", []string{"GET /a HTTP/1.1\r\nCookie: c\r\n\r\nGET /b HTTP/1.1\r\nCookie: dd\r\n\r\n"},
			"GET /a HTTP/1.1\r\nCookie: *\r\n\r\nGET /b HTTP/1.1\r\nCookie: **\r\n\r\n", 2},
		{"obsolete line folding", []string{"GET / HTTP/1.1\r\nAuthorization: Basic\r\n  Zm9v\r\nAccept: */*\r\n\tx\r\n\r\n"},
			"GET / HTTP/1.1\r\nAuthorization: *****\r\n  ****\r\nAccept: */*\r\n\tx\r\n\r\n", 1},
		{"empty value", []string{"GET / HTTP/1.1\r\nCookie:\r\nHost: h\r\n\r\n"}, "GET / HTTP/1.1\r\nCookie:\r\nHost: h\r\n\r\n", 1},
		{"bare LF line endings", []string{"GET / HTTP/1.1\nCookie: c\n\nCookie: body\n"}, "GET / HTTP/1.1\nCookie: *\n\nCookie: body\n", 1},
		{"long token name is redacted", []string{"GET / HTTP/1.1\r\n" + strings.Repeat("X", 70) + ": v\r\n\r\n"}, "GET / HTTP/1.1\r\n" + strings.Repeat("X", 70) + ": *\r\n\r\n", 1},
		{"resumed inside a header block", []string{"Cookie: a\r\nHost: h\r\n\r\nCookie: body"}, "Cookie: *\r\nHost: h\r\n\r\nCookie: body", 1},
		{"binary protocol", []string{"*3\r\n$3\r\nSET\r\n$13\r\nAuthorization\r\n$9\r\nCookie: x\r\n"}, "*3\r\n$3\r\nSET\r\n$13\r\nAuthorization\r\n$9\r\nCookie: x\r\n", 0},
		{"binary bytes then a header-like line", []string{"\x16\x03\x01\x00\x10\nAuthorization: x\r\n", "\x00\x01\nCookie: y\r\n"}, "\x16\x03\x01\x00\x10\nAuthorization: x\r\n\x00\x01\nCookie: y\r\n", 0},
		{"start line needs a valid target", []string{"GET x\r\nCookie: y\r\n", "HTTP/1.1 900\r\nCookie: y\r\n"}, "GET x\r\nCookie: y\r\nHTTP/1.1 900\r\nCookie: y\r\n", 0},
	} {
		got, n := redactAll(c.chunks...)
		if got != c.want || n != c.n {
			t.Errorf("%s: got %q (%d redacted), want %q (%d)", c.name, got, n, c.want, c.n)
		}
	}
}

// TestRedactedStreamParses checks the parser reads a redacted stream as the
// original: same method, path, status and sizes.
func TestRedactedStreamParses(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nSet-Cookie: sid=secret-XYZ\r\nContent-Length: 2\r\n\r\nok"
	parse := func(req, resp string) []Exchange {
		c := NewConn(Config{}, nil)
		c.Feed(Read, []byte(req), len(req), 1)
		return c.Feed(Write, []byte(resp), len(resp), 2)
	}
	want := parse(secretReq, resp)
	rq, _ := redactAll(secretReq)
	rs, _ := redactAll(resp)
	got := parse(rq, rs)
	if len(want) != 1 || len(got) != 1 {
		t.Fatalf("exchanges: %d before redaction, %d after", len(want), len(got))
	}
	w, g := want[0], got[0]
	if w.Method != g.Method || w.Path != g.Path || w.Status != g.Status || w.RequestSize != g.RequestSize || w.ResponseSize != g.ResponseSize {
		t.Fatalf("after redaction %+v, before %+v", g, w)
	}
	if strings.Contains(rq+rs, "secret") {
		t.Fatalf("secret left in %q %q", rq, rs)
	}
}

func TestRedactAllocs(t *testing.T) {
	buf := []byte(secretReq)
	var r Redactor
	if a := testing.AllocsPerRun(100, func() {
		copy(buf, secretReq)
		r.Redact(buf[:40])
		r.Redact(buf[40:])
	}); a != 0 {
		t.Fatalf("%v allocations per run", a)
	}
}

// FuzzRedact: no panic, same length, and only bytes turned into '*' change;
// a deny-listed value placed in a header block is always redacted.
func FuzzRedact(f *testing.F) {
	f.Add([]byte(secretReq), uint16(10))
	f.Add([]byte("HTTP/1.1 200 OK\r\nSet-Cookie: a\r\n\r\nbody"), uint16(3))
	f.Add([]byte("\x16\x03\x01\x00\x10\nCookie: y\r\n"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		orig := append([]byte(nil), data...)
		k := int(cut) % (len(data) + 1)
		var r Redactor
		r.Redact(data[:k])
		r.Redact(data[k:])
		for i := range data {
			if data[i] != orig[i] && data[i] != RedactByte {
				t.Fatalf("byte %d changed from %q to %q", i, orig[i], data[i])
			}
		}
		// Whatever came before, a request written after a blank line
		// has its secret redacted.
		r.Redact([]byte("\r\n\r\n"))
		msg := []byte("GET / HTTP/1.1\r\nCookie: secret-XYZ\r\n")
		r.Redact(msg)
		if bytes.Contains(msg, []byte("secret")) {
			t.Fatalf("not redacted after %q: %q", orig, msg)
		}
	})
}

// BenchmarkRedact is the cost of redacting a 256-byte captured request
// prefix with two deny-listed headers (a fresh stream each time).
func BenchmarkRedact(b *testing.B) {
	src := []byte(secretReq + strings.Repeat("x", 256-len(secretReq)))
	buf := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	var r Redactor
	for i := 0; i < b.N; i++ {
		copy(buf, src)
		r.Reset()
		if r.Redact(buf) != 2 {
			b.Fatal("not redacted")
		}
	}
}
