package http

import (
	"strings"
	"testing"
)

// BenchmarkExchange is the parse cost of one keep-alive request/response
// pair as the probe delivers it: a curl-like request, and an nginx-like
// response of 1 KB whose write was captured to its first 256 bytes.
func BenchmarkExchange(b *testing.B) {
	req := []byte("GET /api/v1/items/12345?page=2 HTTP/1.1\r\nHost: shop.internal:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
	hdr := "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 13:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 1024\r\nLast-Modified: Wed, 02 Dec 2026 12:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"692ee3c0-400\"\r\nAccept-Ranges: bytes\r\n\r\n"
	resp := []byte(hdr + strings.Repeat("x", 1024))
	capt := resp[:256]
	c := NewConn(Config{}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		c.Feed(Read, req, len(req), int64(2*i))
		n += len(c.Feed(Write, capt, len(resp), int64(2*i+1)))
	}
	if n != b.N {
		b.Fatalf("%d exchanges for %d requests", n, b.N)
	}
}

// BenchmarkRejected is the cost of a chunk on a connection detected as not HTTP.
func BenchmarkRejected(b *testing.B) {
	c := NewConn(Config{}, nil)
	tls := []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
	c.Feed(Write, tls, len(tls), 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.Feed(Write, tls, 16384, int64(i))
	}
}

// BenchmarkDetectBinary is the cost of judging a new connection that
// starts with a TLS record.
func BenchmarkDetectBinary(b *testing.B) {
	tls := []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
	st := new(Stats)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := NewConn(Config{}, st)
		c.Feed(Write, tls, len(tls), 0)
	}
}
