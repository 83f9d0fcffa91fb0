package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/servicemap"
)

func topEx(side string, pid uint32, comm, method, route string, status int, dur time.Duration, lport, rport uint16) *httpflow.Exchange {
	x := &httpflow.Exchange{Header: event.Header{Kind: httpflow.KindHTTP}, Side: side, Method: method, Path: route, Route: route,
		Status: status, DurationNS: uint64(dur), RequestBytes: 200, ResponseBytes: 824,
		LocalAddr: "127.0.0.1", LocalPort: lport, RemoteAddr: "127.0.0.1", RemotePort: rport}
	x.PID, x.Comm = pid, comm
	return x
}

func TestTopHTTPRoutes(t *testing.T) {
	r := newHTTPRoutes(3)
	for i := range 10 {
		st := 200
		if i%5 == 0 {
			st = 503
		}
		r.add(topEx("server", 10, "nginx", "GET", "/users/{id}", st, time.Duration(i+1)*time.Millisecond, 80, 40000))
	}
	r.add(topEx("server", 10, "nginx", "POST", "/login", 200, 100*time.Millisecond, 80, 40000))
	r.add(topEx("client", 20, "curl", "GET", "/users/{id}", 200, time.Millisecond, 40000, 80))
	r.add(topEx("client", 20, "curl", "GET", "/a", 200, time.Millisecond, 40000, 80)) // beyond 3 keys
	r.add(topEx("client", 20, "curl", "GET", "/b", 200, time.Millisecond, 40000, 80))
	rows := r.rows(2)
	sortHTTPRows(rows, "rps")
	if len(rows) != 4 || r.folded != 2 {
		t.Fatalf("rows %+v folded %d", rows, r.folded)
	}
	top := rows[0]
	if top.Service != "nginx" || top.Side != "server" || top.Method != "GET" || top.Route != "/users/{id}" ||
		top.Requests != 10 || top.RequestsPerSecond != 5 || top.ErrorRatio != 0.2 || top.BytesPerSecond != 5120 {
		t.Fatalf("top row %+v", top)
	}
	// Nearest-rank truth: p50 = 5 ms, p99 = 10 ms, within 1/16.
	if math.Abs(top.P50Seconds-0.005) > 0.005/16 || math.Abs(top.P99Seconds-0.010) > 0.010/16 {
		t.Fatalf("p50 %v p99 %v", top.P50Seconds, top.P99Seconds)
	}
	if rows[1].Service != "other" || rows[1].Requests != 2 {
		t.Fatalf("folded row %+v", rows[1])
	}
	sortHTTPRows(rows, "p99")
	if rows[0].Route != "/login" {
		t.Fatalf("by p99: %+v", rows[0])
	}
	var b bytes.Buffer
	printHTTPTable(&b, httpTopView{Time: time.Now(), IntervalSeconds: 2, By: "route", Sort: "p99", Rows: rows, Folded: 2})
	for _, want := range []string{"SERVICE  SIDE", "/login", "nginx", "96.469", "folded into \"other\""} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// The edge view joins both sides of a loopback request: one row, rates
// from the growth between refreshes.
func TestTopHTTPEdges(t *testing.T) {
	cfg := servicemap.DefaultConfig()
	cfg.JoinWait = time.Second
	e := &httpEdges{m: servicemap.New(cfg, nil)}
	now := time.Now()
	for range 4 {
		e.m.Add(topEx("server", 10, "nginx", "GET", "/", 200, time.Millisecond, 80, 40000), now)
		e.m.Add(topEx("client", 20, "curl", "GET", "/", 500, time.Millisecond, 40000, 80), now)
	}
	rows := e.rows(now.Add(time.Second), 2)
	if len(rows) != 1 || rows[0].Client != "process/curl" || rows[0].Server != "process/nginx" || rows[0].Requests != 4 ||
		rows[0].RequestsPerSecond != 2 || rows[0].ErrorRatio != 1 {
		t.Fatalf("rows %+v", rows)
	}
	if rows := e.rows(now.Add(2*time.Second), 1); len(rows) != 0 {
		t.Fatalf("no new requests, rows %+v", rows)
	}
}
