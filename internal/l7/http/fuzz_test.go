package http

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzConn feeds arbitrary request and response streams, once as whole
// chunks and once byte by byte. It must never panic, every exchange must be
// sane, and when framing was never lost both runs must agree.
func FuzzConn(f *testing.F) {
	f.Add([]byte(reqGet+post), []byte(respOK+resp404), true)
	f.Add([]byte("POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), false)
	f.Add([]byte("HEAD / HTTP/1.1\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), true)
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"), []byte("HTTP/1.0 200 OK\r\n\r\nbody"), true)
	f.Add([]byte("\x16\x03\x01\x00\x10"), []byte("\x16\x03\x03"), false)
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"), []byte("+PONG\r\n"), true)
	f.Add([]byte("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x00"), false)
	f.Add([]byte("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), false)
	f.Fuzz(func(t *testing.T, req, resp []byte, client bool) {
		reqDir, respDir := Read, Write
		if client {
			reqDir, respDir = Write, Read
		}
		evs := []ev{{dir: reqDir, data: string(req), ts: 1}, {dir: respDir, data: string(resp), ts: 2}, {close: true, ts: 3}}
		whole, ws, _ := run(Config{MaxHeaderBytes: 128, MaxInFlight: 4}, evs, splitters(0)[0])
		bytewise, bs, _ := run(Config{MaxHeaderBytes: 128, MaxInFlight: 4}, evs, splitters(0)[1])
		for _, e := range append(whole, bytewise...) {
			if e.Start > e.End || e.RequestSize < e.RequestBodySize || e.ResponseSize < e.ResponseBodySize || e.RequestBodySize < 0 || e.ResponseBodySize < 0 {
				t.Fatalf("insane exchange %+v", e)
			}
			if strings.ContainsAny(e.Path, "?# ") || e.Status < 100 || e.Status > 599 {
				t.Fatalf("bad path or status %+v", e)
			}
			if e.RequestSize > int64(len(req)) || e.ResponseSize > int64(len(resp)) {
				t.Fatalf("size beyond input %+v", e)
			}
		}
		if ws.Exchanges != uint64(len(whole)) || bs.Exchanges != uint64(len(bytewise)) {
			t.Fatalf("stats disagree with output")
		}
		if ws.LostSync == 0 && bs.LostSync == 0 && !reflect.DeepEqual(whole, bytewise) {
			t.Fatalf("split changed the result:\nwhole %+v\nbytes %+v", whole, bytewise)
		}
	})
}
