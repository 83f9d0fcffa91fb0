package http

import (
	"reflect"
	"strings"
	"testing"
)

func TestEdgeCases(t *testing.T) {
	bigChunk := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + strings.Repeat("c", 5000) + "\r\n0\r\n\r\n"
	hdrEnd := strings.Index(bigChunk, "1388\r\n") + 6
	cut := "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("p", 40)
	type tc struct {
		name  string
		evs   []ev
		want  []Exchange
		stats Snapshot
	}
	base := func(role Role, path string, status int, rq, rs, rqb, rsb, start, end int64, trunc bool) Exchange {
		return Exchange{Role: role, Method: "GET", Path: path, Version: version11, Host: "example.test", Status: status,
			RequestSize: rq, ResponseSize: rs, RequestBodySize: rqb, ResponseBodySize: rsb, Start: start, End: end, Truncated: trunc}
	}
	rq := int64(len(reqGet))
	cases := []tc{
		{
			name: "uncaptured bytes inside a chunk: sizes exact from the chunk size",
			evs: []ev{
				{dir: Read, data: reqGet, ts: 1}, {dir: Write, data: bigChunk[:hdrEnd], ts: 2},
				{dir: Write, data: bigChunk[hdrEnd : hdrEnd+256], size: 5000, ts: 3}, {dir: Write, data: "\r\n0\r\n\r\n", ts: 4},
				{dir: Read, data: reqGet, ts: 5}, {dir: Write, data: resp404, ts: 6},
			},
			want: []Exchange{
				base(RoleServer, "/api/users/42", 200, rq, int64(len(bigChunk)), 0, 5000, 1, 4, false),
				base(RoleServer, "/api/users/42", 404, rq, int64(len(resp404)), 0, 0, 5, 6, false),
			},
			stats: Snapshot{Exchanges: 2, CaptureGaps: 1},
		},
		{
			name: "uncaptured bytes past the chunk: framing lost, found again at the next status line",
			evs: []ev{
				{dir: Write, data: reqGet + reqGet, ts: 1}, {dir: Read, data: bigChunk[:hdrEnd], ts: 2},
				{dir: Read, data: bigChunk[hdrEnd : hdrEnd+256], size: len(bigChunk) - hdrEnd + 10, ts: 3},
				{dir: Read, data: resp404, ts: 4},
			},
			want: []Exchange{
				base(RoleClient, "/api/users/42", 200, rq, int64(len(bigChunk)+10), 0, 5000, 1, 3, true),
				base(RoleClient, "/api/users/42", 404, rq, int64(len(resp404)), 0, 0, 1, 4, false),
			},
			stats: Snapshot{Exchanges: 2, CaptureGaps: 1, LostSync: 1, Truncated: 1},
		},
		{
			name:  "closed mid-body: returned truncated, ending at the last byte",
			evs:   []ev{{dir: Write, data: reqGet, ts: 1}, {dir: Read, data: cut, ts: 2}, {close: true, ts: 9}},
			want:  []Exchange{base(RoleClient, "/api/users/42", 200, rq, int64(len(cut)), 0, 40, 1, 2, true)},
			stats: Snapshot{Exchanges: 1, Truncated: 1},
		},
		{
			name: "empty line between keep-alive requests is tolerated",
			evs: []ev{
				{dir: Read, data: reqGet + "\r\n", ts: 1}, {dir: Write, data: resp404, ts: 2},
				{dir: Read, data: reqGet, ts: 3}, {dir: Write, data: resp404, ts: 4},
			},
			want: []Exchange{
				base(RoleServer, "/api/users/42", 404, rq, int64(len(resp404)), 0, 0, 1, 2, false),
				base(RoleServer, "/api/users/42", 404, rq, int64(len(resp404)), 0, 0, 3, 4, false),
			},
			stats: Snapshot{Exchanges: 2},
		},
		{
			name: "malformed Content-Length loses sync instead of guessing",
			evs: []ev{
				{dir: Read, data: reqGet, ts: 1}, {dir: Write, data: "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\nbody", ts: 2},
				{dir: Read, data: reqGet, ts: 3}, {dir: Write, data: resp404, ts: 4},
			},
			want: []Exchange{
				base(RoleServer, "/api/users/42", 200, rq, 44, 0, 0, 1, 2, true),
				base(RoleServer, "/api/users/42", 404, rq, int64(len(resp404)), 0, 0, 3, 4, false),
			},
			stats: Snapshot{Exchanges: 2, LostSync: 1, Truncated: 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, st, _ := run(Config{}, c.evs, splitters(0)[0])
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, c.want)
			}
			if st != c.stats {
				t.Fatalf("stats %+v, want %+v", st, c.stats)
			}
		})
	}
}
