// Package servicemap aggregates who talks to whom on this node: edges from
// a client service to a server service (or to an address:port when the
// server is not seen here), by protocol, with request and error counts,
// latency, bytes, and first/last seen; nodes are services (container,
// systemd unit, process name, or external address) with the pids seen.
//
// Inputs are `http` events (both sides of an exchange) and the tcp
// probe's connect, accept and close events, for connections that carried
// no HTTP (protocol "tcp"). A request between two processes of this node
// is reported by both: the two events are joined on the connection's
// 4-tuple, so they form one edge and are counted once.
//
// Every table is bounded (nodes, edges, followed connections, exchanges
// waiting for their other side, server endpoints) and what does not fit is
// counted in vigil_servicemap_dropped_total. Edges idle for IdleExpiry are
// forgotten. Counts are kept since an edge was first seen and per minute
// for the last MaxWindow, so a snapshot covers either.
package servicemap

import (
	"container/list"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/servicemap/service"
)

// Protocols of an edge.
const (
	ProtoHTTP = "http"
	ProtoTCP  = "tcp"
)

// Config bounds the aggregator.
type Config struct {
	MaxNodes int // services and external peers
	MaxEdges int
	// MaxConns bounds the TCP connections followed from connect/accept to
	// close (the least recently active is forgotten when full).
	MaxConns int
	// MaxPending bounds the http exchanges waiting for the other side's
	// event; when full the oldest is counted alone, unjoined.
	MaxPending int
	// MaxListeners bounds the server endpoints (address:port) known to
	// belong to a service of this node.
	MaxListeners int
	// JoinWait is how long an exchange (or a closed connection) waits for
	// the other side's event before it is counted alone.
	JoinWait time.Duration
	// IdleExpiry forgets edges (and then nodes) with no traffic for this long.
	IdleExpiry time.Duration
}

// DefaultConfig is what the agent runs with.
func DefaultConfig() Config {
	return Config{
		MaxNodes: 1024, MaxEdges: 4096, MaxConns: 16384, MaxPending: 8192, MaxListeners: 4096,
		JoinWait: 2 * time.Second, IdleExpiry: 15 * time.Minute,
	}
}

// Slots of the per-minute ring: windows up to MaxWindow, plus the current,
// partial minute.
const (
	slotWidth = time.Minute
	numSlots  = 16
	// MaxWindow is the longest ?window= a snapshot can cover.
	MaxWindow = (numSlots - 1) * slotWidth
)

// Drop reasons (vigil_servicemap_dropped_total{reason}).
const (
	DropNodes     = "node_table_full"     // a sample for a new node was not counted
	DropEdges     = "edge_table_full"     // a sample for a new edge was not counted
	DropConns     = "conn_table_full"     // the least recently active connection was forgotten
	DropPending   = "pending_full"        // an exchange was counted before its other side could join
	DropListeners = "listener_table_full" // a server endpoint was not remembered
)

// Kinds are the event kinds the map consumes.
func Kinds() []event.Kind {
	return []event.Kind{httpflow.KindHTTP, event.KindConnect, event.KindAccept, event.KindClose}
}

// Map is the aggregator; safe for concurrent use.
type Map struct {
	cfg Config

	mu        sync.Mutex
	nodes     map[string]*node
	edges     map[edgeKey]*edge
	conns     map[connKey]*conn
	connLRU   *list.List // of *conn, most recently active at the front
	pending   map[connKey]*pendingConn
	pendingQ  *list.List // of *pendingEx, oldest first
	listeners map[netip.AddrPort]listener
	lastTCP   time.Time // arrival of the last tcp event

	nodesGauge   prometheus.Gauge
	edgesGauge   *prometheus.GaugeVec
	dropped      *prometheus.CounterVec
	expired      prometheus.Counter
	exchanges    *prometheus.CounterVec
	tcpCommitted prometheus.Counter
}

type node struct {
	id    service.Identity
	pids  []uint32 // the last maxPIDs distinct pids seen
	first time.Time
	last  time.Time
	edges int // edges that reference the node
}

const maxPIDs = 8

type edgeKey struct {
	client, server string // node ids
	proto          string
}

type edge struct {
	key         edgeKey
	first, last time.Time
	total       stats
	slots       [numSlots]slot
}

type slot struct {
	minute int64
	stats
}

// stats are the counters of an edge over some time.
type stats struct {
	requests, errors    uint64
	latencySumNS        uint64
	latency             Hist
	reqBytes, respBytes uint64
}

// sample is one request (http) or one connection (tcp).
type sample struct {
	err                 bool
	latencyNS           uint64
	hasLatency          bool
	reqBytes, respBytes uint64
}

func (s *stats) add(x sample) {
	s.requests++
	if x.err {
		s.errors++
	}
	if x.hasLatency {
		s.latencySumNS += x.latencyNS
		s.latency.Add(x.latencyNS)
	}
	s.reqBytes += x.reqBytes
	s.respBytes += x.respBytes
}

func (s *stats) merge(o *stats) {
	s.requests += o.requests
	s.errors += o.errors
	s.latencySumNS += o.latencySumNS
	s.latency.Merge(&o.latency)
	s.reqBytes += o.reqBytes
	s.respBytes += o.respBytes
}

// connKey is a TCP connection: the client's and the server's endpoint.
type connKey struct{ client, server netip.AddrPort }

// party is one end of a connection as this node saw it.
type party struct {
	id   service.Identity
	pid  uint32
	seen bool
}

// conn follows one TCP connection from connect/accept to close.
type conn struct {
	key            connKey
	elem           *list.Element
	client, server party
	established    bool // a connect or accept was seen
	start          time.Time
	connectNS      uint64 // connect latency, when the connect was seen
	hasConnect     bool
	http           bool // carried HTTP: not a tcp edge
	closing        time.Time
	sent, received uint64 // client to server, server to client
	clientBytes    bool   // sent/received come from the client's close
	lastActive     time.Time
}

type listener struct {
	p    party
	seen time.Time
}

// pendingConn holds a connection's exchanges waiting for the other side,
// in order (HTTP/1.x answers in order on a connection).
type pendingConn struct {
	server, client []*pendingEx
	// The processes seen on each end while exchanges waited: they name
	// the other side of an exchange whose own counterpart was lost.
	serverSeen, clientSeen party
}

type pendingEx struct {
	key      connKey
	ex       *httpflow.Exchange
	elem     *list.Element
	arrived  time.Time // counted at this time, when it comes alone
	deadline time.Time
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *int }{
		{&c.MaxNodes, &d.MaxNodes}, {&c.MaxEdges, &d.MaxEdges}, {&c.MaxConns, &d.MaxConns},
		{&c.MaxPending, &d.MaxPending}, {&c.MaxListeners, &d.MaxListeners},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.JoinWait <= 0 {
		c.JoinWait = d.JoinWait
	}
	if c.IdleExpiry <= 0 {
		c.IdleExpiry = d.IdleExpiry
	}
	return c
}

// New returns an empty map whose metrics are registered on reg (may be
// nil). Zero fields of cfg take the defaults.
func New(cfg Config, reg prometheus.Registerer) *Map {
	cfg = cfg.withDefaults()
	m := &Map{
		cfg:       cfg,
		nodes:     map[string]*node{},
		edges:     map[edgeKey]*edge{},
		conns:     map[connKey]*conn{},
		connLRU:   list.New(),
		pending:   map[connKey]*pendingConn{},
		pendingQ:  list.New(),
		listeners: map[netip.AddrPort]listener{},
		nodesGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_servicemap_nodes", Help: "Services and external peers in the service map.",
		}),
		edgesGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_servicemap_edges", Help: "Edges in the service map, by protocol.",
		}, []string{"protocol"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_servicemap_dropped_total",
			Help: "What the service map could not keep because a table was full, by reason.",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_servicemap_edges_expired_total", Help: "Edges forgotten after being idle for the idle expiry.",
		}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_servicemap_http_requests_total",
			Help: "HTTP requests counted in the service map, by the sides that reported them (both, client, server).",
		}, []string{"seen_by"}),
		tcpCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_servicemap_tcp_connections_total",
			Help: "TCP connections (closed, or failed connects) without HTTP counted in the service map.",
		}),
	}
	for _, r := range []string{DropNodes, DropEdges, DropConns, DropPending, DropListeners} {
		m.dropped.WithLabelValues(r)
	}
	for _, s := range []string{"both", "client", "server"} {
		m.exchanges.WithLabelValues(s)
	}
	for _, p := range []string{ProtoHTTP, ProtoTCP} {
		m.edgesGauge.WithLabelValues(p)
	}
	if reg != nil {
		reg.MustRegister(m.nodesGauge, m.edgesGauge, m.dropped, m.expired, m.exchanges, m.tcpCommitted)
	}
	return m
}

// Add takes one event; kinds other than Kinds() are ignored. now is the
// arrival time (deadlines and first/last seen use it).
func (m *Map) Add(ev event.Event, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e := ev.(type) {
	case *httpflow.Exchange:
		m.addHTTP(e, now)
	case *event.TCPConnect:
		m.lastTCP = now
		m.addConnect(e, now)
	case *event.TCPAccept:
		m.lastTCP = now
		m.addAccept(e, now)
	case *event.TCPClose:
		m.lastTCP = now
		m.addClose(e, now)
	}
}

// Flush counts what waited JoinWait for its other side, forgets idle
// edges and nodes and updates the size gauges; call it about once a second.
func (m *Map) Flush(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for el := m.pendingQ.Front(); el != nil; el = m.pendingQ.Front() {
		p := el.Value.(*pendingEx)
		if p.deadline.After(now) {
			break
		}
		m.commitPending(p)
	}
	for _, c := range m.conns {
		switch {
		case !c.closing.IsZero() && !c.closing.After(now):
			m.commitConn(c)
		case !c.established && c.closing.IsZero() && now.Sub(c.lastActive) > m.cfg.IdleExpiry:
			// Known only from http events: nothing to count at close.
			m.forgetConn(c)
		}
	}
	for k, l := range m.listeners {
		if now.Sub(l.seen) > m.cfg.IdleExpiry {
			delete(m.listeners, k)
		}
	}
	for k, e := range m.edges {
		if now.Sub(e.last) > m.cfg.IdleExpiry {
			delete(m.edges, k)
			m.nodes[k.client].edges--
			m.nodes[k.server].edges--
			m.expired.Inc()
		}
	}
	for id, n := range m.nodes {
		if n.edges <= 0 && now.Sub(n.last) > m.cfg.IdleExpiry {
			delete(m.nodes, id)
		}
	}
	m.updateGauges()
}

func (m *Map) updateGauges() {
	m.nodesGauge.Set(float64(len(m.nodes)))
	var h, t int
	for k := range m.edges {
		if k.proto == ProtoHTTP {
			h++
		} else {
			t++
		}
	}
	m.edgesGauge.WithLabelValues(ProtoHTTP).Set(float64(h))
	m.edgesGauge.WithLabelValues(ProtoTCP).Set(float64(t))
}

func addrPort(addr string, port uint16) (netip.AddrPort, bool) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), port), true
}

func partyOf(h *event.Header) party {
	return party{id: service.Of(&h.Process), pid: h.PID, seen: true}
}

// --- http ---

func (m *Map) addHTTP(e *httpflow.Exchange, now time.Time) {
	local, ok1 := addrPort(e.LocalAddr, e.LocalPort)
	remote, ok2 := addrPort(e.RemoteAddr, e.RemotePort)
	server := e.Side == "server"
	key := connKey{client: local, server: remote}
	if server {
		key = connKey{client: remote, server: local}
		m.learnListener(local, partyOf(&e.Header), now)
	}
	if !ok1 || !ok2 {
		// No usable 4-tuple to join on: count this side alone.
		m.commitHTTP(key, e, nil, now)
		return
	}
	if c := m.conns[key]; c != nil {
		c.http = true
		m.touchConn(c, now)
	} else if now.Sub(m.lastTCP) < m.cfg.IdleExpiry {
		// Remember the connection carried HTTP for when the tcp probe
		// reports its close (not when no tcp events come: nothing would
		// ever close the entry).
		c := m.newConn(key, now)
		c.http = true
	}
	pc := m.pending[key]
	if pc == nil {
		pc = &pendingConn{}
		m.pending[key] = pc
	}
	mine, other := &pc.client, &pc.server
	if server {
		mine, other = &pc.server, &pc.client
		pc.serverSeen = partyOf(&e.Header)
	} else {
		pc.clientSeen = partyOf(&e.Header)
	}
	if len(*other) > 0 {
		o := (*other)[0]
		*other = (*other)[1:]
		m.pendingQ.Remove(o.elem)
		m.dropPendingConn(key, pc)
		m.commitHTTP(key, e, o.ex, now)
		return
	}
	if m.pendingQ.Len() >= m.cfg.MaxPending {
		m.dropped.WithLabelValues(DropPending).Inc()
		m.commitPending(m.pendingQ.Front().Value.(*pendingEx))
		if m.pending[key] == nil { // the oldest was this connection's last
			m.pending[key] = pc
		}
	}
	p := &pendingEx{key: key, ex: e, arrived: now, deadline: now.Add(m.cfg.JoinWait)}
	p.elem = m.pendingQ.PushBack(p)
	*mine = append(*mine, p)
}

func (m *Map) dropPendingConn(key connKey, pc *pendingConn) {
	if len(pc.client) == 0 && len(pc.server) == 0 {
		delete(m.pending, key)
	}
}

// commitPending counts an exchange whose other side did not come, at the
// time it arrived.
func (m *Map) commitPending(p *pendingEx) {
	m.pendingQ.Remove(p.elem)
	var client, server party
	if pc := m.pending[p.key]; pc != nil {
		q := &pc.client
		if p.ex.Side == "server" {
			q = &pc.server
		}
		if i := slices.Index(*q, p); i >= 0 {
			*q = slices.Delete(*q, i, i+1)
		}
		client, server = pc.clientSeen, pc.serverSeen
		m.dropPendingConn(p.key, pc)
	}
	m.commitHTTPWith(p.key, p.ex, nil, client, server, p.arrived)
}

// commitHTTP counts one request: a and, when the other side reported it
// too, b. The client's view gives the measures (latency as the caller saw
// it, network included); sides not reported come from the processes seen on
// the connection while exchanges waited, the connection table, the known
// server endpoints, or the address.
func (m *Map) commitHTTP(key connKey, a, b *httpflow.Exchange, now time.Time) {
	m.commitHTTPWith(key, a, b, party{}, party{}, now)
}

// commitHTTPWith is commitHTTP with the ends last seen on the connection,
// for the side that did not report this exchange.
func (m *Map) commitHTTPWith(key connKey, a, b *httpflow.Exchange, client, server party, now time.Time) {
	var cex, sex *httpflow.Exchange
	for _, e := range []*httpflow.Exchange{a, b} {
		if e == nil {
			continue
		}
		if e.Side == "server" {
			server, sex = partyOf(&e.Header), e
		} else {
			client, cex = partyOf(&e.Header), e
		}
	}
	seenBy := "both"
	switch {
	case cex == nil:
		seenBy = "server"
	case sex == nil:
		seenBy = "client"
	}
	m.exchanges.WithLabelValues(seenBy).Inc()
	meas := cex
	if meas == nil {
		meas = sex
	}
	client, server = m.resolve(key, client, server)
	m.record(client, server, ProtoHTTP, sample{
		err:       meas.Status >= 500,
		latencyNS: meas.DurationNS, hasLatency: true,
		reqBytes: uint64(max(meas.RequestBytes, 0)), respBytes: uint64(max(meas.ResponseBytes, 0)),
	}, now)
}

// resolve fills the unreported ends of a connection: from the connection
// table, then (servers) the known endpoints of this node, then the address.
func (m *Map) resolve(key connKey, client, server party) (party, party) {
	c := m.conns[key]
	if !client.seen && c != nil && c.client.seen {
		client = c.client
	}
	if !server.seen && c != nil && c.server.seen {
		server = c.server
	}
	if !server.seen {
		if l, ok := m.listeners[key.server]; ok {
			server = l.p
		}
	}
	if !client.seen {
		name := "unknown"
		if key.client.IsValid() {
			name = key.client.Addr().String()
		}
		client = party{id: service.External(name)}
	}
	if !server.seen {
		name := "unknown"
		if key.server.IsValid() {
			name = key.server.String()
		}
		server = party{id: service.External(name)}
	}
	return client, server
}

func (m *Map) learnListener(ap netip.AddrPort, p party, now time.Time) {
	if !ap.IsValid() {
		return
	}
	if _, ok := m.listeners[ap]; !ok && len(m.listeners) >= m.cfg.MaxListeners {
		m.dropped.WithLabelValues(DropListeners).Inc()
		return
	}
	m.listeners[ap] = listener{p: p, seen: now}
}

// --- tcp ---

func (m *Map) addConnect(e *event.TCPConnect, now time.Time) {
	client, ok1 := addrPort(e.SAddr, e.SPort)
	server, ok2 := addrPort(e.DAddr, e.DPort)
	key := connKey{client: client, server: server}
	if e.Error != "" || !ok1 || !ok2 {
		// A failed connect is a connection attempt of its own (its local
		// port may be 0): count it now.
		if e.Error != "" {
			m.tcpCommitted.Inc()
			c, s := m.resolve(key, partyOf(&e.Header), party{})
			m.record(c, s, ProtoTCP, sample{err: true, latencyNS: msToNS(e.LatencyMS), hasLatency: true}, now)
		}
		return
	}
	c := m.conns[key]
	if c == nil {
		c = m.newConn(key, now)
	} else {
		m.touchConn(c, now)
	}
	c.client = partyOf(&e.Header)
	c.connectNS, c.hasConnect = msToNS(e.LatencyMS), true
	m.establish(c, now)
}

func (m *Map) addAccept(e *event.TCPAccept, now time.Time) {
	server, ok1 := addrPort(e.SAddr, e.SPort)
	client, ok2 := addrPort(e.DAddr, e.DPort)
	if !ok1 || !ok2 {
		return
	}
	p := partyOf(&e.Header)
	m.learnListener(server, p, now)
	key := connKey{client: client, server: server}
	c := m.conns[key]
	if c == nil {
		c = m.newConn(key, now)
	} else {
		m.touchConn(c, now)
	}
	c.server = p
	m.establish(c, now)
}

func (m *Map) establish(c *conn, now time.Time) {
	if !c.established {
		c.established, c.start = true, now
	}
}

func (m *Map) addClose(e *event.TCPClose, now time.Time) {
	local, ok1 := addrPort(e.SAddr, e.SPort)
	remote, ok2 := addrPort(e.DAddr, e.DPort)
	if !ok1 || !ok2 {
		return
	}
	outbound := e.Direction == "outbound"
	key := connKey{client: local, server: remote}
	if !outbound {
		key = connKey{client: remote, server: local}
	}
	c := m.conns[key]
	if c == nil {
		// Opened before the agent started, or forgotten.
		c = m.newConn(key, now)
	} else {
		m.touchConn(c, now)
	}
	p := partyOf(&e.Header)
	switch {
	case outbound:
		if !c.client.seen {
			c.client = p
		}
		c.sent, c.received, c.clientBytes = e.BytesSent, e.BytesReceived, true
	default:
		if !c.server.seen {
			c.server = p
		}
		if !c.clientBytes {
			c.sent, c.received = e.BytesReceived, e.BytesSent
		}
	}
	m.establish(c, now)
	if c.closing.IsZero() {
		// Wait for the other end's close (a loopback peer) before counting.
		c.closing = now.Add(m.cfg.JoinWait)
	}
}

// commitConn counts a closed connection that carried no HTTP, at its last
// close, and forgets it.
func (m *Map) commitConn(c *conn) {
	if !c.http {
		m.tcpCommitted.Inc()
		client, server := m.resolve(c.key, c.client, c.server)
		m.record(client, server, ProtoTCP, sample{
			latencyNS: c.connectNS, hasLatency: c.hasConnect, reqBytes: c.sent, respBytes: c.received,
		}, c.lastActive)
	}
	m.forgetConn(c)
}

func (m *Map) newConn(key connKey, now time.Time) *conn {
	if len(m.conns) >= m.cfg.MaxConns {
		if el := m.connLRU.Back(); el != nil {
			m.dropped.WithLabelValues(DropConns).Inc()
			m.forgetConn(el.Value.(*conn))
		}
	}
	c := &conn{key: key, lastActive: now}
	c.elem = m.connLRU.PushFront(c)
	m.conns[key] = c
	return c
}

func (m *Map) touchConn(c *conn, now time.Time) {
	c.lastActive = now
	m.connLRU.MoveToFront(c.elem)
}

func (m *Map) forgetConn(c *conn) {
	m.connLRU.Remove(c.elem)
	delete(m.conns, c.key)
}

func msToNS(ms float64) uint64 {
	if ms <= 0 {
		return 0
	}
	return uint64(ms*1e6 + 0.5)
}

// --- nodes and edges ---

// record adds one sample to the edge client → server, creating the nodes
// and the edge if there is room.
func (m *Map) record(client, server party, proto string, s sample, now time.Time) {
	key := edgeKey{client: client.id.ID(), server: server.id.ID(), proto: proto}
	e := m.edges[key]
	if e == nil {
		if len(m.edges) >= m.cfg.MaxEdges {
			m.dropped.WithLabelValues(DropEdges).Inc()
			return
		}
		need := 0
		for _, id := range []string{key.client, key.server} {
			if m.nodes[id] == nil {
				need++
			}
		}
		if key.client == key.server && need == 2 {
			need = 1
		}
		if len(m.nodes)+need > m.cfg.MaxNodes {
			m.dropped.WithLabelValues(DropNodes).Inc()
			return
		}
		e = &edge{key: key, first: now}
		m.edges[key] = e
		m.node(client, now).edges++
		m.node(server, now).edges++
	}
	m.node(client, now)
	m.node(server, now)
	if now.After(e.last) {
		e.last = now
	}
	e.total.add(s)
	minute := now.Unix() / int64(slotWidth/time.Second)
	sl := &e.slots[minute%numSlots]
	if sl.minute != minute {
		*sl = slot{minute: minute}
	}
	sl.add(s)
}

// node returns the node of p, created if needed, with p's pid noted.
func (m *Map) node(p party, now time.Time) *node {
	id := p.id.ID()
	n := m.nodes[id]
	if n == nil {
		n = &node{id: p.id, first: now}
		m.nodes[id] = n
	}
	if now.After(n.last) {
		n.last = now
	}
	if p.pid != 0 && !slices.Contains(n.pids, p.pid) {
		if len(n.pids) == maxPIDs {
			n.pids = n.pids[1:]
		}
		n.pids = append(n.pids, p.pid)
	}
	return n
}
