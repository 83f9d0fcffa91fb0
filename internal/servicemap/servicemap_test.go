package servicemap

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func hdr(kind event.Kind, pid uint32, comm string) event.Header {
	h := event.Header{Kind: kind, Time: t0}
	h.PID, h.Comm = pid, comm
	return h
}

// ex is one side of an exchange: local and remote as that process sees them.
func ex(side string, pid uint32, comm, local string, lport uint16, remote string, rport uint16, status int, dur time.Duration) *httpflow.Exchange {
	return &httpflow.Exchange{
		Header: hdr(httpflow.KindHTTP, pid, comm), Side: side, Method: "GET", Path: "/", Route: "/", Status: status,
		DurationNS: uint64(dur), RequestBytes: 100, ResponseBytes: 1000,
		LocalAddr: local, LocalPort: lport, RemoteAddr: remote, RemotePort: rport,
	}
}

func newMap(t *testing.T, mod func(*Config)) (*Map, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	return New(cfg, reg), reg
}

func findEdge(s Snapshot, client, server, proto string) (Edge, bool) {
	for _, e := range s.Edges {
		if e.Client == client && e.Server == server && e.Protocol == proto {
			return e, true
		}
	}
	return Edge{}, false
}

func findNode(s Snapshot, id string) (Node, bool) {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

func counter(c *prometheus.CounterVec, l string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(l))
}

// A loopback request seen by both processes is one request on one edge,
// whichever side's event arrives first.
func TestJoinsBothSidesIntoOneEdge(t *testing.T) {
	for _, serverFirst := range []bool{true, false} {
		m, _ := newMap(t, nil)
		now := t0
		for i := range 3 {
			srv := ex("server", 200, "nginx", "127.0.0.1", 8080, "127.0.0.1", 40000, 200, time.Duration(i+1)*time.Millisecond)
			cli := ex("client", 300, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, 200, time.Duration(i+1)*time.Millisecond+50*time.Microsecond)
			first, second := event.Event(srv), event.Event(cli)
			if !serverFirst {
				first, second = second, first
			}
			m.Add(first, now)
			m.Add(second, now.Add(time.Millisecond))
			now = now.Add(10 * time.Millisecond)
		}
		m.Flush(now.Add(time.Minute))
		s := m.Snapshot(now, Query{})
		if len(s.Edges) != 1 {
			t.Fatalf("serverFirst=%v: %d edges, want 1: %+v", serverFirst, len(s.Edges), s.Edges)
		}
		e, ok := findEdge(s, "process/curl", "process/nginx", ProtoHTTP)
		if !ok || e.Requests != 3 || e.Errors != 0 || e.Latency.Count != 3 || e.RequestBytes != 300 || e.ResponseBytes != 3000 {
			t.Fatalf("serverFirst=%v: edge %+v, want curl → nginx with 3 requests, 300/3000 bytes", serverFirst, e)
		}
		// The client's view gives the latency: 1.05+2.05+3.05 ms.
		if got := e.Latency.SumSeconds; math.Abs(got-0.00615) > 1e-9 {
			t.Fatalf("latency sum %v s, want 0.00615 (the client's durations)", got)
		}
		if got := counter(m.exchanges, "both"); got != 3 {
			t.Fatalf("requests seen by both = %v, want 3", got)
		}
		n, _ := findNode(s, "process/nginx")
		c, _ := findNode(s, "process/curl")
		if n.Kind != "process" || !slices.Equal(n.PIDs, []uint32{200}) || !slices.Equal(c.PIDs, []uint32{300}) {
			t.Fatalf("nodes %+v", s.Nodes)
		}
	}
}

// One side alone waits JoinWait, then counts on its own: a server not seen
// here is its address:port, a client not seen here is its address.
func TestOneSideAloneAfterJoinWait(t *testing.T) {
	m, _ := newMap(t, nil)
	m.Add(ex("client", 300, "curl", "10.0.0.1", 40001, "10.0.0.5", 443, 200, time.Millisecond), t0)
	m.Add(ex("server", 200, "nginx", "10.0.0.1", 80, "192.0.2.7", 5555, 503, time.Millisecond), t0)
	m.Flush(t0.Add(time.Second))
	if s := m.Snapshot(t0.Add(time.Second), Query{}); len(s.Edges) != 0 {
		t.Fatalf("counted before JoinWait: %+v", s.Edges)
	}
	m.Flush(t0.Add(2 * time.Second))
	s := m.Snapshot(t0.Add(2*time.Second), Query{})
	if e, ok := findEdge(s, "process/curl", "external/10.0.0.5:443", ProtoHTTP); !ok || e.Requests != 1 || e.Errors != 0 {
		t.Fatalf("client-only edge: %+v in %+v", e, s.Edges)
	}
	if e, ok := findEdge(s, "external/192.0.2.7", "process/nginx", ProtoHTTP); !ok || e.Requests != 1 || e.Errors != 1 {
		t.Fatalf("server-only edge: %+v in %+v", e, s.Edges)
	}
	if n, _ := findNode(s, "external/10.0.0.5:443"); n.Kind != "external" || len(n.PIDs) != 0 {
		t.Fatalf("external node %+v", n)
	}
	if c, s := counter(m.exchanges, "client"), counter(m.exchanges, "server"); c != 1 || s != 1 {
		t.Fatalf("seen by client %v, server %v; want 1 and 1", c, s)
	}
}

// A client whose server side was not captured on this connection still
// lands on the server's node when that endpoint is known to be a local
// service.
func TestKnownServerEndpointResolvesClientOnlyRequests(t *testing.T) {
	m, _ := newMap(t, nil)
	m.Add(ex("server", 200, "nginx", "127.0.0.1", 8080, "127.0.0.1", 40000, 200, time.Millisecond), t0)
	m.Add(ex("client", 300, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, 200, time.Millisecond), t0)
	m.Add(ex("client", 301, "wget", "127.0.0.1", 40002, "127.0.0.1", 8080, 200, time.Millisecond), t0)
	m.Flush(t0.Add(3 * time.Second))
	s := m.Snapshot(t0.Add(3*time.Second), Query{})
	if e, ok := findEdge(s, "process/wget", "process/nginx", ProtoHTTP); !ok || e.Requests != 1 {
		t.Fatalf("wget → nginx missing: %+v", s.Edges)
	}
	if len(s.Edges) != 2 {
		t.Fatalf("%d edges, want 2: %+v", len(s.Edges), s.Edges)
	}
}

func TestErrorsAre5xx(t *testing.T) {
	m, _ := newMap(t, nil)
	for i, st := range []int{200, 301, 404, 500, 502, 503, 499} {
		m.Add(ex("client", 300, "curl", "10.0.0.1", uint16(40000+i), "10.0.0.5", 80, st, time.Millisecond), t0)
	}
	m.Flush(t0.Add(time.Hour / 60))
	e, _ := findEdge(m.Snapshot(t0, Query{}), "process/curl", "external/10.0.0.5:80", ProtoHTTP)
	if e.Requests != 7 || e.Errors != 3 {
		t.Fatalf("requests %d errors %d, want 7 and 3", e.Requests, e.Errors)
	}
}

// nearestRank is the true q-quantile of sorted values.
func nearestRank(sorted []uint64, q float64) float64 {
	r := int(math.Ceil(q * float64(len(sorted))))
	return float64(sorted[max(r, 1)-1])
}

func TestQuantilesWithinBucketErrorOfTruth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 100, 10000} {
		var h Hist
		vals := make([]uint64, n)
		for i := range vals {
			// Log-normal around 2 ms, from µs to seconds.
			vals[i] = uint64(math.Exp(rng.NormFloat64()*1.5 + math.Log(2e6)))
			h.Add(vals[i])
		}
		slices.Sort(vals)
		for _, q := range []float64{0.5, 0.9, 0.99, 1} {
			want, got := nearestRank(vals, q), h.Quantile(q)
			if math.Abs(got-want) > want/16+0.5 {
				t.Errorf("n=%d q=%v: %v, truth %v (more than 1/16 off)", n, q, got, want)
			}
		}
	}
	// Small values are exact; merging equals adding.
	var a, b, all Hist
	for v := range uint64(40) {
		all.Add(v)
		if v%2 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
	}
	a.Merge(&b)
	if a.Count() != 40 || a.Quantile(0.1) != all.Quantile(0.1) || a.Quantile(0.99) != all.Quantile(0.99) || all.Quantile(0.1) != 3 {
		t.Fatalf("merge: count %d p10 %v/%v", a.Count(), a.Quantile(0.1), all.Quantile(0.1))
	}
}

// The edge's p50/p99 come from the histogram of every request on it.
func TestEdgeQuantiles(t *testing.T) {
	m, _ := newMap(t, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	var durs []uint64
	for i := range 2000 {
		d := uint64(rng.IntN(50_000_000) + 100_000)
		durs = append(durs, d)
		m.Add(ex("client", 300, "curl", "10.0.0.1", uint16(20000+i%1000), "10.0.0.5", 80, 200, time.Duration(d)), t0)
	}
	m.Flush(t0.Add(3 * time.Second))
	e, _ := findEdge(m.Snapshot(t0, Query{}), "process/curl", "external/10.0.0.5:80", ProtoHTTP)
	slices.Sort(durs)
	for _, c := range []struct {
		q   float64
		got float64
	}{{0.5, e.Latency.P50Seconds}, {0.99, e.Latency.P99Seconds}} {
		want := nearestRank(durs, c.q) / 1e9
		if math.Abs(c.got-want) > want/16 {
			t.Errorf("p%v = %v s, truth %v s", c.q*100, c.got, want)
		}
	}
	if e.Requests != 2000 {
		t.Fatalf("requests %d", e.Requests)
	}
}

func tcpConn(local string, lport uint16, remote string, rport uint16, dir string) event.TCPConn {
	return event.TCPConn{Family: "ipv4", SAddr: local, SPort: lport, DAddr: remote, DPort: rport, Direction: dir}
}

// A loopback TCP connection seen by connect, accept and both closes is one
// connection on one edge; while open it shows as an open connection.
func TestTCPConnectionBothEnds(t *testing.T) {
	m, reg := newMap(t, nil)
	m.Add(&event.TCPConnect{Header: hdr(event.KindConnect, 300, "psql"), TCPConn: tcpConn("127.0.0.1", 40000, "127.0.0.1", 5432, "outbound"), LatencyMS: 0.25}, t0)
	m.Add(&event.TCPAccept{Header: hdr(event.KindAccept, 200, "postgres"), TCPConn: tcpConn("127.0.0.1", 5432, "127.0.0.1", 40000, "inbound")}, t0)
	s := m.Snapshot(t0, Query{})
	e, ok := findEdge(s, "process/psql", "process/postgres", ProtoTCP)
	if !ok || e.OpenConnections != 1 || e.Requests != 0 || len(s.Nodes) != 2 {
		t.Fatalf("open connection: %+v, nodes %+v", s.Edges, s.Nodes)
	}
	if n, _ := findNode(s, "process/postgres"); !slices.Equal(n.PIDs, []uint32{200}) {
		t.Fatalf("postgres node %+v", n)
	}
	m.Add(&event.TCPClose{Header: hdr(event.KindClose, 300, "psql"), TCPConn: tcpConn("127.0.0.1", 40000, "127.0.0.1", 5432, "outbound"), BytesSent: 111, BytesReceived: 2222}, t0.Add(time.Second))
	m.Add(&event.TCPClose{Header: hdr(event.KindClose, 200, "postgres"), TCPConn: tcpConn("127.0.0.1", 5432, "127.0.0.1", 40000, "inbound"), BytesSent: 2222, BytesReceived: 111}, t0.Add(time.Second))
	m.Flush(t0.Add(4 * time.Second))
	s = m.Snapshot(t0.Add(4*time.Second), Query{})
	if len(s.Edges) != 1 {
		t.Fatalf("edges %+v", s.Edges)
	}
	e = s.Edges[0]
	if e.Client != "process/psql" || e.Server != "process/postgres" || e.Requests != 1 || e.Errors != 0 || e.OpenConnections != 0 ||
		e.RequestBytes != 111 || e.ResponseBytes != 2222 || e.Latency.Count != 1 || math.Abs(e.Latency.SumSeconds-0.00025) > 1e-12 {
		t.Fatalf("closed connection edge %+v", e)
	}
	if got := testutil.ToFloat64(m.tcpCommitted); got != 1 {
		t.Fatalf("tcp connections counted %v, want 1", got)
	}
	if n := testutil.CollectAndCount(reg, "vigil_servicemap_edges"); n != 2 {
		t.Fatalf("vigil_servicemap_edges series %d, want 2 (one per protocol)", n)
	}
	if got := testutil.ToFloat64(m.edgesGauge.WithLabelValues(ProtoTCP)); got != 1 {
		t.Fatalf("vigil_servicemap_edges{protocol=tcp} = %v", got)
	}
}

// Connections that carried HTTP are http edges only; failed connects are
// tcp errors.
func TestTCPSkipsHTTPConnectionsAndCountsFailures(t *testing.T) {
	m, _ := newMap(t, nil)
	m.Add(&event.TCPConnect{Header: hdr(event.KindConnect, 300, "curl"), TCPConn: tcpConn("127.0.0.1", 40000, "127.0.0.1", 8080, "outbound"), LatencyMS: 0.1}, t0)
	m.Add(ex("client", 300, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, 200, time.Millisecond), t0)
	m.Add(&event.TCPClose{Header: hdr(event.KindClose, 300, "curl"), TCPConn: tcpConn("127.0.0.1", 40000, "127.0.0.1", 8080, "outbound")}, t0)
	m.Add(&event.TCPConnect{Header: hdr(event.KindConnect, 300, "curl"), TCPConn: tcpConn("127.0.0.1", 0, "127.0.0.1", 9, "outbound"), LatencyMS: 0.05, Error: "ECONNREFUSED"}, t0)
	m.Flush(t0.Add(5 * time.Second))
	s := m.Snapshot(t0.Add(5*time.Second), Query{})
	if _, ok := findEdge(s, "process/curl", "external/127.0.0.1:8080", ProtoTCP); ok {
		t.Fatalf("http connection counted as tcp: %+v", s.Edges)
	}
	if e, ok := findEdge(s, "process/curl", "external/127.0.0.1:8080", ProtoHTTP); !ok || e.Requests != 1 {
		t.Fatalf("http edge %+v", s.Edges)
	}
	if e, ok := findEdge(s, "process/curl", "external/127.0.0.1:9", ProtoTCP); !ok || e.Requests != 1 || e.Errors != 1 {
		t.Fatalf("failed connect edge %+v", s.Edges)
	}
	if got := m.Snapshot(t0, Query{Protocol: ProtoHTTP}); len(got.Edges) != 1 || got.Edges[0].Protocol != ProtoHTTP || len(got.Nodes) != 2 {
		t.Fatalf("?protocol=http: %+v", got)
	}
}

func TestBoundsAreCounted(t *testing.T) {
	m, _ := newMap(t, func(c *Config) { c.MaxEdges, c.MaxNodes, c.MaxPending = 3, 3, 2 })
	// Three clients to one external server: the third edge finds the node table full.
	for i, comm := range []string{"a", "b", "c"} {
		m.Add(ex("client", uint32(10+i), comm, "10.0.0.1", uint16(40000+i), "10.0.0.5", 80, 200, time.Millisecond), t0)
	}
	// The third pending exchange went in only after the oldest was counted.
	if got := counter(m.dropped, DropPending); got != 1 {
		t.Fatalf("pending_full %v, want 1", got)
	}
	m.Flush(t0.Add(3 * time.Second))
	s := m.Snapshot(t0, Query{})
	if len(s.Edges) != 2 || len(s.Nodes) != 3 {
		t.Fatalf("edges %+v nodes %+v", s.Edges, s.Nodes)
	}
	if got := counter(m.dropped, DropNodes); got != 1 {
		t.Fatalf("node_table_full %v, want 1", got)
	}
	// New edges between known nodes fit until the edge table is full.
	for _, comm := range []string{"a", "b"} {
		m.Add(&event.TCPConnect{Header: hdr(event.KindConnect, 10, comm), TCPConn: tcpConn("10.0.0.1", 0, "10.0.0.5", 80, "outbound"), Error: "ETIMEDOUT"}, t0)
	}
	if s := m.Snapshot(t0, Query{}); len(s.Edges) != 3 {
		t.Fatalf("edges %+v", s.Edges)
	}
	if got := counter(m.dropped, DropEdges); got != 1 {
		t.Fatalf("edge_table_full %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.nodesGauge); got != 3 {
		t.Fatalf("vigil_servicemap_nodes %v, want 3", got)
	}
}

// The connection table keeps the most recently active connections.
func TestConnTableBound(t *testing.T) {
	m, _ := newMap(t, func(c *Config) { c.MaxConns = 2 })
	for i := range 3 {
		m.Add(&event.TCPConnect{Header: hdr(event.KindConnect, 300, "psql"), TCPConn: tcpConn("127.0.0.1", uint16(40000+i), "127.0.0.1", 5432, "outbound")}, t0)
	}
	if got := counter(m.dropped, DropConns); got != 1 {
		t.Fatalf("conn_table_full %v, want 1", got)
	}
	e, _ := findEdge(m.Snapshot(t0, Query{}), "process/psql", "external/127.0.0.1:5432", ProtoTCP)
	if e.OpenConnections != 2 {
		t.Fatalf("open connections %d, want 2", e.OpenConnections)
	}
	// The forgotten one still counts when it closes (from its close alone).
	m.Add(&event.TCPClose{Header: hdr(event.KindClose, 300, "psql"), TCPConn: tcpConn("127.0.0.1", 40000, "127.0.0.1", 5432, "outbound"), BytesSent: 7}, t0)
	m.Flush(t0.Add(3 * time.Second))
	e, _ = findEdge(m.Snapshot(t0, Query{}), "process/psql", "external/127.0.0.1:5432", ProtoTCP)
	if e.Requests != 1 || e.RequestBytes != 7 || e.Latency.Count != 0 {
		t.Fatalf("edge %+v", e)
	}
}

func TestIdleEdgesExpire(t *testing.T) {
	m, _ := newMap(t, func(c *Config) { c.IdleExpiry = 10 * time.Minute })
	m.Add(ex("client", 300, "curl", "10.0.0.1", 40000, "10.0.0.5", 80, 200, time.Millisecond), t0)
	m.Add(ex("client", 301, "wget", "10.0.0.1", 40001, "10.0.0.6", 80, 200, time.Millisecond), t0.Add(9*time.Minute))
	m.Flush(t0.Add(9*time.Minute + 3*time.Second))
	if got := testutil.ToFloat64(m.edgesGauge.WithLabelValues(ProtoHTTP)); got != 2 {
		t.Fatalf("edges %v, want 2", got)
	}
	m.Flush(t0.Add(11 * time.Minute))
	s := m.Snapshot(t0.Add(11*time.Minute), Query{})
	if len(s.Edges) != 1 || s.Edges[0].Client != "process/wget" || len(s.Nodes) != 2 {
		t.Fatalf("after expiry: %+v %+v", s.Edges, s.Nodes)
	}
	if got := testutil.ToFloat64(m.expired); got != 1 {
		t.Fatalf("expired %v", got)
	}
	if got := testutil.ToFloat64(m.nodesGauge); got != 2 {
		t.Fatalf("nodes gauge %v, want 2", got)
	}
}

func TestWindowCountsRecentMinutes(t *testing.T) {
	m, _ := newMap(t, nil)
	add := func(at time.Time, n int) {
		for i := range n {
			m.Add(ex("client", 300, "curl", "10.0.0.1", uint16(30000+i), "10.0.0.5", 80, 200, time.Millisecond), at)
		}
		m.Flush(at.Add(3 * time.Second))
	}
	add(t0, 5)                     // minute 0
	add(t0.Add(7*time.Minute), 3)  // minute 7
	add(t0.Add(10*time.Minute), 2) // minute 10
	now := t0.Add(10*time.Minute + 30*time.Second)
	for _, c := range []struct {
		w    time.Duration
		want uint64
	}{{0, 10}, {time.Minute, 2}, {4 * time.Minute, 5}, {11 * time.Minute, 10}} {
		s := m.Snapshot(now, Query{Window: c.w})
		if len(s.Edges) != 1 || s.Edges[0].Requests != c.want {
			t.Errorf("window %v: %+v, want %d requests", c.w, s.Edges, c.want)
		}
	}
	// A second into minute 11, a 1m window still holds minute 10: a window
	// never covers less than asked.
	if s := m.Snapshot(t0.Add(11*time.Minute+time.Second), Query{Window: time.Minute}); len(s.Edges) != 1 || s.Edges[0].Requests != 2 {
		t.Errorf("1m window just after the minute: %+v, want 2 requests", s.Edges)
	}
	// A window with nothing in it shows no edge (the slots of minute 0 were
	// reused after 15 minutes).
	if s := m.Snapshot(t0.Add(16*time.Minute), Query{Window: 5 * time.Minute}); len(s.Edges) != 0 || len(s.Nodes) != 0 {
		t.Fatalf("empty window: %+v", s)
	}
}

func TestHandler(t *testing.T) {
	m, _ := newMap(t, nil)
	m.Add(ex("client", 300, "curl", "10.0.0.1", 40000, "10.0.0.5", 80, 200, time.Millisecond), time.Now())
	m.Flush(time.Now().Add(3 * time.Second))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, bad := range []string{"?protocol=udp", "?window=forever", "?window=1h", "?window=10ms"} {
		resp, err := http.Get(srv.URL + bad)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body["error"] == "" {
			t.Fatalf("%s: %d %v", bad, resp.StatusCode, body)
		}
	}
	resp, err := http.Get(srv.URL + "?protocol=http&window=5m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Window != "5m0s" || len(s.Edges) != 1 || s.Edges[0].Requests != 1 || len(s.Nodes) != 2 {
		t.Fatalf("%+v", s)
	}
}

// With no tcp events flowing (the tcp probe off), http events do not fill
// the connection table.
func TestHTTPWithoutTCPKeepsNoConnections(t *testing.T) {
	m, _ := newMap(t, func(c *Config) { c.MaxConns = 4 })
	for i := range 100 {
		m.Add(ex("client", 300, "curl", "10.0.0.1", uint16(40000+i), "10.0.0.5", 80, 200, time.Millisecond), t0)
	}
	if len(m.conns) != 0 || counter(m.dropped, DropConns) != 0 {
		t.Fatalf("%d connections kept, %v dropped", len(m.conns), counter(m.dropped, DropConns))
	}
}

func BenchmarkJoinedHTTP(b *testing.B) {
	m := New(DefaultConfig(), nil)
	srv := ex("server", 200, "nginx", "127.0.0.1", 8080, "127.0.0.1", 40000, 200, time.Millisecond)
	cli := ex("client", 300, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, 200, time.Millisecond)
	now := t0
	for b.Loop() {
		m.Add(srv, now)
		m.Add(cli, now)
	}
}

func BenchmarkTCPConnection(b *testing.B) {
	m := New(DefaultConfig(), nil)
	now := t0
	i := 0
	for b.Loop() {
		port := uint16(1024 + i%60000)
		i++
		m.Add(&event.TCPConnect{Header: hdr(event.KindConnect, 300, "psql"), TCPConn: tcpConn("127.0.0.1", port, "127.0.0.1", 5432, "outbound"), LatencyMS: 0.1}, now)
		m.Add(&event.TCPAccept{Header: hdr(event.KindAccept, 200, "postgres"), TCPConn: tcpConn("127.0.0.1", 5432, "127.0.0.1", port, "inbound")}, now)
		m.Add(&event.TCPClose{Header: hdr(event.KindClose, 300, "psql"), TCPConn: tcpConn("127.0.0.1", port, "127.0.0.1", 5432, "outbound")}, now)
		m.Add(&event.TCPClose{Header: hdr(event.KindClose, 200, "postgres"), TCPConn: tcpConn("127.0.0.1", 5432, "127.0.0.1", port, "inbound")}, now)
		if i%1000 == 0 {
			now = now.Add(3 * time.Second)
			m.Flush(now)
		}
	}
}

// A dual-stack server sees its IPv4 client as ::ffff:a.b.c.d: still one
// connection. A lost event on one side only shifts which events pair up;
// every request is still counted once.
func TestJoinAcrossMappedAddressesAndLostEvents(t *testing.T) {
	m, _ := newMap(t, nil)
	m.Add(ex("server", 200, "nginx", "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 40000, 200, time.Millisecond), t0)
	m.Add(ex("client", 300, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, 200, time.Millisecond), t0)
	// Request 2: only the server's event; request 3: both.
	m.Add(ex("server", 200, "nginx", "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 40000, 200, time.Millisecond), t0)
	m.Add(ex("server", 200, "nginx", "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 40000, 200, time.Millisecond), t0)
	m.Add(ex("client", 300, "curl", "127.0.0.1", 40000, "127.0.0.1", 8080, 200, time.Millisecond), t0)
	m.Flush(t0.Add(3 * time.Second))
	s := m.Snapshot(t0, Query{})
	if len(s.Edges) != 1 || s.Edges[0].Client != "process/curl" || s.Edges[0].Server != "process/nginx" || s.Edges[0].Requests != 3 {
		t.Fatalf("%+v", s.Edges)
	}
	if b, sv := counter(m.exchanges, "both"), counter(m.exchanges, "server"); b != 2 || sv != 1 {
		t.Fatalf("seen by both %v, server only %v; want 2 and 1", b, sv)
	}
}

func TestZeroConfigTakesDefaults(t *testing.T) {
	m := New(Config{MaxEdges: 7}, nil)
	if m.cfg.MaxEdges != 7 || m.cfg.MaxPending != DefaultConfig().MaxPending || m.cfg.JoinWait != 2*time.Second {
		t.Fatalf("%+v", m.cfg)
	}
	m.Add(ex("client", 300, "curl", "10.0.0.1", 40000, "10.0.0.5", 80, 200, time.Millisecond), t0)
	m.Flush(t0.Add(3 * time.Second))
	if s := m.Snapshot(t0, Query{}); len(s.Edges) != 1 {
		t.Fatalf("%+v", s)
	}
}
