package http

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// ev is one syscall's worth of data, or the close of the connection.
type ev struct {
	dir   Direction
	data  string
	size  int // real length; 0 means len(data)
	ts    int64
	close bool
}

// splitter cuts the captured bytes of one event into pieces fed as
// separate chunks with the same timestamp (the gap, if any, stays on the
// last piece).
type splitter struct {
	name string
	cut  func(n int) []int // piece lengths
}

func splitters(maxLen int) []splitter {
	s := []splitter{
		{"whole", func(n int) []int { return []int{n} }},
		{"bytes", func(n int) []int {
			p := make([]int, n)
			for i := range p {
				p[i] = 1
			}
			return p
		}},
	}
	for k := 1; k < maxLen; k++ {
		s = append(s, splitter{fmt.Sprintf("at%d", k), func(n int) []int {
			if k >= n {
				return []int{n}
			}
			return []int{k, n - k}
		}})
	}
	rng := rand.New(rand.NewSource(1))
	for r := 0; r < 20; r++ {
		seed := rng.Int63()
		s = append(s, splitter{fmt.Sprintf("rand%d", r), func(n int) []int {
			g := rand.New(rand.NewSource(seed))
			var p []int
			for n > 0 {
				k := min(n, 1+g.Intn(17))
				p = append(p, k)
				n -= k
			}
			return p
		}})
	}
	return s
}

func run(cfg Config, evs []ev, sp splitter) ([]Exchange, Snapshot, *Conn) {
	st := new(Stats)
	c := NewConn(cfg, st)
	var out []Exchange
	for _, e := range evs {
		if e.close {
			out = append(out, c.Close(e.ts)...)
			continue
		}
		size := e.size
		if size == 0 {
			size = len(e.data)
		}
		pieces := []int{0}
		if len(e.data) > 0 {
			pieces = sp.cut(len(e.data))
		}
		off := 0
		for i, n := range pieces {
			piece := e.data[off : off+n]
			off += n
			real := len(piece)
			if i == len(pieces)-1 {
				real += size - len(e.data)
			}
			out = append(out, c.Feed(e.dir, []byte(piece), real, e.ts)...)
		}
	}
	return out, st.Snapshot(), c
}

// checkAllSplits runs evs under every splitter and requires the same
// exchanges and counters as the whole-chunk run, which must equal want.
func checkAllSplits(t *testing.T, cfg Config, evs []ev, want []Exchange, wantStats Snapshot) {
	t.Helper()
	maxLen := 0
	for _, e := range evs {
		maxLen = max(maxLen, len(e.data))
	}
	for _, sp := range splitters(maxLen) {
		got, st, _ := run(cfg, evs, sp)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("split %s: exchanges\n got %+v\nwant %+v", sp.name, got, want)
		}
		// a byte-wise split of a truncated chunk sees the same gaps
		if st != wantStats {
			t.Fatalf("split %s: stats\n got %+v\nwant %+v", sp.name, st, wantStats)
		}
	}
}

const (
	reqGet  = "GET /api/users/42?token=abc HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n"
	respOK  = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	resp404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	post    = "POST /form?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
)

func TestExchanges(t *testing.T) {
	chunkedResp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n"
	chunkedReq := "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	expect := "PUT /obj/7 HTTP/1.1\r\nHost: s3\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
	cont := "HTTP/1.1 100 Continue\r\n\r\n"
	head := "HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n"
	headResp := "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
	noContent := "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
	notModified := "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n"
	http10 := "GET /old HTTP/1.0\r\n\r\n"
	http10Resp := "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close"
	abs := "GET http://proxy.test:8080/a/b?q=1 HTTP/1.1\r\nHost: ignored\r\n\r\n"

	type tc struct {
		name  string
		cfg   Config
		evs   []ev
		want  []Exchange
		stats Snapshot
	}
	ok := func(role Role, m, p, host string, status int, rq, rs, rqb, rsb, start, end int64) Exchange {
		return Exchange{Role: role, Method: m, Path: p, Version: version11, Host: host, Status: status,
			RequestSize: rq, ResponseSize: rs, RequestBodySize: rqb, ResponseBodySize: rsb, Start: start, End: end}
	}
	cases := []tc{
		{
			name:  "server get",
			evs:   []ev{{dir: Read, data: reqGet, ts: 10}, {dir: Write, data: respOK, ts: 25}},
			want:  []Exchange{ok(RoleServer, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 10, 25)},
			stats: Snapshot{Exchanges: 1},
		},
		{
			name:  "client get",
			evs:   []ev{{dir: Write, data: reqGet, ts: 10}, {dir: Read, data: respOK, ts: 25}},
			want:  []Exchange{ok(RoleClient, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 10, 25)},
			stats: Snapshot{Exchanges: 1},
		},
		{
			name: "keep-alive, duration to the end of a response written in three parts",
			evs: []ev{
				{dir: Read, data: reqGet, ts: 1}, {dir: Write, data: respOK[:20], ts: 2}, {dir: Write, data: respOK[20:60], ts: 3}, {dir: Write, data: respOK[60:], ts: 4},
				{dir: Read, data: post, ts: 5}, {dir: Write, data: resp404, ts: 9},
			},
			want: []Exchange{
				ok(RoleServer, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 1, 4),
				ok(RoleServer, "POST", "/form", "h", 404, int64(len(post)), int64(len(resp404)), 11, 0, 5, 9),
			},
			stats: Snapshot{Exchanges: 2},
		},
		{
			name: "pipelined",
			evs: []ev{
				{dir: Write, data: reqGet + post + head, ts: 1},
				{dir: Read, data: respOK + resp404, ts: 2}, {dir: Read, data: headResp, ts: 3},
			},
			want: []Exchange{
				ok(RoleClient, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 1, 2),
				ok(RoleClient, "POST", "/form", "h", 404, int64(len(post)), int64(len(resp404)), 11, 0, 1, 2),
				ok(RoleClient, "HEAD", "/big", "h", 200, int64(len(head)), int64(len(headResp)), 0, 0, 1, 3),
			},
			stats: Snapshot{Exchanges: 3},
		},
		{
			name: "chunked bodies both ways",
			evs:  []ev{{dir: Read, data: chunkedReq, ts: 1}, {dir: Write, data: chunkedResp, ts: 2}, {dir: Read, data: reqGet, ts: 3}, {dir: Write, data: resp404, ts: 4}},
			want: []Exchange{
				ok(RoleServer, "POST", "/upload", "h", 200, int64(len(chunkedReq)), int64(len(chunkedResp)), 3, 31, 1, 2),
				ok(RoleServer, "GET", "/api/users/42", "example.test", 404, int64(len(reqGet)), int64(len(resp404)), 0, 0, 3, 4),
			},
			stats: Snapshot{Exchanges: 2},
		},
		{
			name: "expect 100-continue: the interim response is not the response",
			evs: []ev{
				{dir: Write, data: expect, ts: 1}, {dir: Read, data: cont, ts: 2},
				{dir: Write, data: "data", ts: 3}, {dir: Read, data: noContent, ts: 7},
			},
			want:  []Exchange{ok(RoleClient, "PUT", "/obj/7", "s3", 204, int64(len(expect))+4, int64(len(noContent)), 4, 0, 1, 7)},
			stats: Snapshot{Exchanges: 1},
		},
		{
			name: "HEAD, 204 and 304 have no body whatever their Content-Length",
			evs: []ev{
				{dir: Read, data: head, ts: 1}, {dir: Write, data: headResp, ts: 2},
				{dir: Read, data: reqGet, ts: 3}, {dir: Write, data: noContent, ts: 4},
				{dir: Read, data: reqGet, ts: 5}, {dir: Write, data: notModified, ts: 6},
				{dir: Read, data: reqGet, ts: 7}, {dir: Write, data: respOK, ts: 8},
			},
			want: []Exchange{
				ok(RoleServer, "HEAD", "/big", "h", 200, int64(len(head)), int64(len(headResp)), 0, 0, 1, 2),
				ok(RoleServer, "GET", "/api/users/42", "example.test", 204, int64(len(reqGet)), int64(len(noContent)), 0, 0, 3, 4),
				ok(RoleServer, "GET", "/api/users/42", "example.test", 304, int64(len(reqGet)), int64(len(notModified)), 0, 0, 5, 6),
				ok(RoleServer, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 7, 8),
			},
			stats: Snapshot{Exchanges: 4},
		},
		{
			name: "HTTP/1.0 body until close",
			evs:  []ev{{dir: Write, data: http10, ts: 1}, {dir: Read, data: http10Resp, ts: 4}, {close: true, ts: 9}},
			want: []Exchange{{Role: RoleClient, Method: "GET", Path: "/old", Version: version10, Status: 200,
				RequestSize: int64(len(http10)), ResponseSize: int64(len(http10Resp)), ResponseBodySize: 11, Start: 1, End: 4}},
			stats: Snapshot{Exchanges: 1},
		},
		{
			name:  "absolute-form target",
			evs:   []ev{{dir: Write, data: abs, ts: 1}, {dir: Read, data: resp404, ts: 2}},
			want:  []Exchange{ok(RoleClient, "GET", "/a/b", "proxy.test:8080", 404, int64(len(abs)), int64(len(resp404)), 0, 0, 1, 2)},
			stats: Snapshot{Exchanges: 1},
		},
		{
			name: "request split across many writes",
			evs: []ev{
				{dir: Write, data: post[:3], ts: 1}, {dir: Write, data: post[3:9], ts: 2}, {dir: Write, data: post[9:30], ts: 3},
				{dir: Write, data: post[30:50], ts: 4}, {dir: Write, data: post[50:], ts: 5}, {dir: Read, data: respOK, ts: 8},
			},
			want:  []Exchange{ok(RoleClient, "POST", "/form", "h", 200, int64(len(post)), int64(len(respOK)), 11, 5, 1, 8)},
			stats: Snapshot{Exchanges: 1},
		},
		{
			name: "upgrade: 101 is the response, then nothing is parsed",
			evs: []ev{
				{dir: Read, data: "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", ts: 1},
				{dir: Write, data: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", ts: 2},
				{dir: Write, data: "\x81\x05hello", ts: 3}, {dir: Read, data: reqGet, ts: 4}, {dir: Write, data: respOK, ts: 5},
			},
			want:  []Exchange{ok(RoleServer, "GET", "/ws", "h", 101, 70, 56, 0, 0, 1, 2)},
			stats: Snapshot{Exchanges: 1, Upgraded: 1},
		},
		{
			name:  "unanswered requests at close",
			evs:   []ev{{dir: Write, data: reqGet + reqGet, ts: 1}, {dir: Read, data: respOK, ts: 2}, {close: true, ts: 3}},
			want:  []Exchange{ok(RoleClient, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 1, 2)},
			stats: Snapshot{Exchanges: 1, Unanswered: 1},
		},
		{
			name: "pipelining deeper than MaxInFlight",
			cfg:  Config{MaxInFlight: 2},
			evs:  []ev{{dir: Write, data: reqGet + post + head, ts: 1}, {dir: Read, data: respOK + resp404 + resp404, ts: 2}},
			want: []Exchange{
				ok(RoleClient, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 1, 2),
				ok(RoleClient, "POST", "/form", "h", 404, int64(len(post)), int64(len(resp404)), 11, 0, 1, 2),
			},
			stats: Snapshot{Exchanges: 2, InFlightDropped: 1, OrphanResponses: 1},
		},
		{
			name: "response before any request is orphan",
			evs: []ev{{dir: Write, data: reqGet, ts: 1}, {dir: Read, data: respOK, ts: 2}, {dir: Read, data: resp404, ts: 3},
				{dir: Write, data: reqGet, ts: 4}, {dir: Read, data: respOK, ts: 5}},
			want: []Exchange{
				ok(RoleClient, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 1, 2),
				ok(RoleClient, "GET", "/api/users/42", "example.test", 200, int64(len(reqGet)), int64(len(respOK)), 0, 5, 4, 5),
			},
			stats: Snapshot{Exchanges: 2, OrphanResponses: 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkAllSplits(t, c.cfg, c.evs, c.want, c.stats) })
	}
}

// A large body of which only a prefix of each write was captured: sizes come
// from the declared length and the real write sizes, and the next request
// on the connection is still framed right.
func TestCapturedPrefixOnly(t *testing.T) {
	const body = 10 << 20
	hdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", body)
	evs := []ev{{dir: Read, data: reqGet, ts: 1}, {dir: Write, data: hdr, ts: 2}}
	const write = 64 << 10
	for i := 0; i < body/write; i++ {
		evs = append(evs, ev{dir: Write, data: strings.Repeat("x", 256), size: write, ts: int64(3 + i)})
	}
	last := int64(3 + body/write - 1)
	// headers and the start of the body in one write, cut at 256 bytes
	small := "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("y", 2000)
	evs = append(evs,
		ev{dir: Read, data: post, ts: 500}, ev{dir: Write, data: small[:256], size: len(small), ts: 501},
		ev{dir: Read, data: reqGet, ts: 600}, ev{dir: Write, data: resp404, ts: 601})
	want := []Exchange{
		{Role: RoleServer, Method: "GET", Path: "/api/users/42", Version: version11, Host: "example.test", Status: 200,
			RequestSize: int64(len(reqGet)), ResponseSize: int64(len(hdr) + body), ResponseBodySize: body, Start: 1, End: last},
		{Role: RoleServer, Method: "POST", Path: "/form", Version: version11, Host: "h", Status: 200,
			RequestSize: int64(len(post)), RequestBodySize: 11, ResponseSize: int64(len(small)), ResponseBodySize: 2000, Start: 500, End: 501},
		{Role: RoleServer, Method: "GET", Path: "/api/users/42", Version: version11, Host: "example.test", Status: 404,
			RequestSize: int64(len(reqGet)), ResponseSize: int64(len(resp404)), Start: 600, End: 601},
	}
	for _, sp := range []splitter{splitters(0)[0], splitters(0)[1]} {
		got, st, _ := run(Config{}, evs, sp)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", sp.name, got, want)
		}
		if st.CaptureGaps != uint64(body/write+1) || st.LostSync != 0 || st.Exchanges != 3 || st.Truncated != 0 {
			t.Fatalf("%s: stats %+v", sp.name, st)
		}
	}
}

// Headers cut by the capture: the exchange is returned truncated when the
// next response starts a chunk, and the connection goes on.
func TestLostSyncInHeaders(t *testing.T) {
	longResp := "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\nX-Long: " + strings.Repeat("v", 300) + "\r\n\r\nerr"
	evs := []ev{
		{dir: Read, data: reqGet, ts: 1}, {dir: Write, data: longResp[:256], size: len(longResp), ts: 2},
		{dir: Read, data: post, ts: 3}, {dir: Write, data: respOK, ts: 4},
		{dir: Read, data: reqGet, ts: 5}, {dir: Write, data: resp404, ts: 6},
	}
	want := []Exchange{
		{Role: RoleServer, Method: "GET", Path: "/api/users/42", Version: version11, Host: "example.test", Status: 500,
			RequestSize: int64(len(reqGet)), ResponseSize: int64(len(longResp)), Start: 1, End: 2, Truncated: true},
		{Role: RoleServer, Method: "POST", Path: "/form", Version: version11, Host: "h", Status: 200,
			RequestSize: int64(len(post)), RequestBodySize: 11, ResponseSize: int64(len(respOK)), ResponseBodySize: 5, Start: 3, End: 4},
		{Role: RoleServer, Method: "GET", Path: "/api/users/42", Version: version11, Host: "example.test", Status: 404,
			RequestSize: int64(len(reqGet)), ResponseSize: int64(len(resp404)), Start: 5, End: 6},
	}
	got, st, _ := run(Config{}, evs, splitters(0)[0])
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("\n got %+v\nwant %+v", got, want)
	}
	if st != (Snapshot{Exchanges: 3, Truncated: 1, CaptureGaps: 1, LostSync: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

// Header lines past MaxHeaderBytes are only scanned for framing: the
// Content-Length found there still frames the body.
func TestHeaderCap(t *testing.T) {
	req := "GET /x HTTP/1.1\r\nHost: early\r\nAccept: " + strings.Repeat("a", 80) + "\r\nX-Late: 1\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nServer: " + strings.Repeat("s", 100) + "\r\nContent-Length: 4\r\n\r\nbody"
	evs := []ev{{dir: Write, data: req, ts: 1}, {dir: Read, data: resp + resp404, ts: 2}, {dir: Write, data: reqGet, ts: 3}, {dir: Read, data: resp404, ts: 4}}
	cfg := Config{MaxHeaderBytes: 64, KeepHeaders: true}
	want := []Exchange{
		{Role: RoleClient, Method: "GET", Path: "/x", Version: version11, Host: "early", Status: 200,
			RequestSize: int64(len(req)), ResponseSize: int64(len(resp)), ResponseBodySize: 4, Start: 1, End: 2,
			RequestHeaders: []Header{{"Host", "early"}}},
		{Role: RoleClient, Method: "GET", Path: "/api/users/42", Version: version11, Host: "example.test", Status: 404,
			RequestSize: int64(len(reqGet)), ResponseSize: int64(len(resp404)), Start: 3, End: 4,
			RequestHeaders: []Header{{"Host", "example.test"}}, ResponseHeaders: []Header{{"Content-Length", "0"}}},
	}
	// 3 messages over 64 bytes (req, resp, reqGet), 2 lines over the line buffer (Accept, Server)
	checkAllSplits(t, cfg, evs, want, Snapshot{Exchanges: 2, HeadersOverCap: 3, LongLines: 2, OrphanResponses: 1})
}

func TestRedaction(t *testing.T) {
	req := "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer secret\r\nCookie: sid=secret\r\nX-Api-Key: secret\r\nX-Custom-Token: secret\r\nAccept: */*\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nSet-Cookie: sid=secret\r\nContent-Length: 6\r\n\r\nsecret"
	for _, keep := range []bool{false, true} {
		got, _, _ := run(Config{MaxHeaderBytes: 1024, KeepHeaders: keep}, []ev{{dir: Read, data: req, ts: 1}, {dir: Write, data: resp, ts: 2}}, splitters(0)[0])
		if len(got) != 1 {
			t.Fatalf("keep=%v: %d exchanges", keep, len(got))
		}
		if s := fmt.Sprintf("%+v", got); strings.Contains(s, "secret") {
			t.Fatalf("keep=%v: secret leaked: %s", keep, s)
		}
		if keep {
			want := []Header{{"Host", "h"}, {"Authorization", Redacted}, {"Cookie", Redacted}, {"X-Api-Key", Redacted}, {"X-Custom-Token", Redacted}, {"Accept", "*/*"}}
			if !reflect.DeepEqual(got[0].RequestHeaders, want) || !reflect.DeepEqual(got[0].ResponseHeaders, []Header{{"Set-Cookie", Redacted}, {"Content-Length", "6"}}) {
				t.Fatalf("headers %+v / %+v", got[0].RequestHeaders, got[0].ResponseHeaders)
			}
		}
	}
	if !IsDenied("proxy-authorization", nil) || !IsDenied("X-Tenant", []string{"x-tenant"}) || IsDenied("Content-Type", nil) {
		t.Fatal("deny-list")
	}
}

// Binary protocols and text that is not HTTP never become exchanges.
func TestDetectionRejects(t *testing.T) {
	tlsHello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x5a", 40)
	cases := map[string][]ev{
		"tls":                    {{dir: Write, data: tlsHello, ts: 1}, {dir: Read, data: "\x16\x03\x03\x00\x7a\x02", ts: 2}},
		"redis":                  {{dir: Write, data: "*1\r\n$4\r\nPING\r\n", ts: 1}, {dir: Read, data: "+PONG\r\n", ts: 2}},
		"redis inline GET":       {{dir: Write, data: "GET key\r\n", ts: 1}, {dir: Read, data: "$-1\r\n", ts: 2}},
		"postgres":               {{dir: Write, data: "\x00\x00\x00\x08\x04\xd2\x16\x2f", ts: 1}, {dir: Read, data: "N", ts: 2}},
		"postgres startup":       {{dir: Write, data: "\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00", ts: 1}},
		"smtp":                   {{dir: Read, data: "220 mx ESMTP\r\n", ts: 1}, {dir: Write, data: "EHLO x\r\n", ts: 2}},
		"response first":         {{dir: Read, data: respOK, ts: 1}, {dir: Write, data: reqGet, ts: 2}},
		"http/0.9":               {{dir: Write, data: "GET /\r\n", ts: 1}},
		"http/2 preface":         {{dir: Write, data: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ts: 1}},
		"bad response":           {{dir: Write, data: reqGet, ts: 1}, {dir: Read, data: "SSH-2.0-OpenSSH_9.2\r\n", ts: 2}, {dir: Read, data: respOK, ts: 3}},
		"uncaptured first chunk": {{dir: Write, data: "", size: 100, ts: 1}, {dir: Write, data: reqGet, ts: 2}},
		"version 2":              {{dir: Write, data: "GET / HTTP/2\r\n\r\n", ts: 1}},
	}
	for name, evs := range cases {
		t.Run(name, func(t *testing.T) {
			checkAllSplits(t, Config{}, evs, nil, Snapshot{NotHTTP: 1, CaptureGaps: map[bool]uint64{true: 1}[name == "uncaptured first chunk"]})
			_, _, c := run(Config{}, evs, splitters(0)[0])
			if c.Detection() != NotHTTP {
				t.Fatalf("detection %d", c.Detection())
			}
		})
	}
	// random bytes: 2000 buffers, none may be taken for HTTP.
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 2000; i++ {
		b := make([]byte, 1+rng.Intn(300))
		rng.Read(b)
		got, _, c := run(Config{}, []ev{{dir: Write, data: string(b), ts: 1}, {dir: Read, data: string(b), ts: 2}}, splitters(0)[0])
		if len(got) != 0 || c.Detection() == IsHTTP {
			t.Fatalf("random %x taken for HTTP", b)
		}
	}
}

// After rejection a chunk costs one comparison: nothing is buffered.
func TestRejectedConnectionIsIgnored(t *testing.T) {
	c := NewConn(Config{}, nil)
	c.Feed(Write, []byte("\x16\x03\x01"), 3, 1)
	if c.Detection() != NotHTTP {
		t.Fatal("not rejected")
	}
	if n := testing.AllocsPerRun(100, func() { c.Feed(Write, []byte(reqGet), len(reqGet), 2) }); n != 0 {
		t.Fatalf("%v allocs per ignored chunk", n)
	}
	if len(c.req.line) != 0 || c.req.m != nil {
		t.Fatal("rejected connection buffered data")
	}
}
