package servicemap

import (
	"cmp"
	"slices"
	"time"
)

// Snapshot is the service map at one time: the JSON of /api/v1/servicemap.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Window is what the counts cover: "all" (since each edge was first
	// seen) or a duration such as "5m0s".
	Window string `json:"window"`
	Nodes  []Node `json:"nodes"`
	Edges  []Edge `json:"edges"`
}

// Node is a service of this node or an external peer.
type Node struct {
	// ID is kind/name, what edges refer to.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Kind is container, unit, process or external.
	Kind string `json:"kind"`
	// PIDs are the last pids seen for the service (at most 8); none for
	// external peers.
	PIDs      []uint32  `json:"pids"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Edge is traffic from a client service to a server, over one protocol.
type Edge struct {
	Client   string `json:"client"`   // node id
	Server   string `json:"server"`   // node id
	Protocol string `json:"protocol"` // http or tcp
	// Requests: HTTP requests, or TCP connections (closed, or failed
	// connects); Errors: 5xx responses, or failed connects.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Latency: request duration (first request byte to last response
	// byte, as the client saw it when it was seen), or connect latency.
	Latency Latency `json:"latency"`
	// Bytes client → server and server → client: HTTP message sizes, or
	// TCP payload bytes of closed connections.
	RequestBytes  uint64 `json:"request_bytes"`
	ResponseBytes uint64 `json:"response_bytes"`
	// OpenConnections: established TCP connections not closed yet that
	// carried no HTTP so far (tcp edges only; not windowed).
	OpenConnections int       `json:"open_connections"`
	FirstSeen       time.Time `json:"first_seen"`
	LastSeen        time.Time `json:"last_seen"`
}

// Latency summarises an edge's latencies in seconds; P50 and P99 are within
// 6.25 % of the true nearest-rank quantiles.
type Latency struct {
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
	P50Seconds float64 `json:"p50_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
}

// Query selects what a snapshot shows.
type Query struct {
	Protocol string        // "" for all, else http or tcp
	Window   time.Duration // 0: since first seen; else at least the last Window: the current minute and Window in whole minutes before it (at most MaxWindow)
}

// Snapshot returns the map as of now.
func (m *Map) Snapshot(now time.Time, q Query) Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := Snapshot{Time: now, Window: "all", Nodes: []Node{}, Edges: []Edge{}}
	if q.Window > 0 {
		snap.Window = q.Window.String()
	}
	byKey := map[edgeKey]*Edge{}
	nodes := map[string]Node{}
	addNode := func(n *node) {
		nodes[n.id.ID()] = Node{ID: n.id.ID(), Name: n.id.Name, Kind: n.id.Kind, PIDs: slices.Sorted(slices.Values(n.pids)),
			FirstSeen: n.first, LastSeen: n.last}
	}
	for k, e := range m.edges {
		if q.Protocol != "" && k.proto != q.Protocol {
			continue
		}
		st := &e.total
		if q.Window > 0 {
			st = e.window(now, q.Window)
			if st.requests == 0 {
				continue // may come back with open connections below
			}
		}
		out := &Edge{Client: k.client, Server: k.server, Protocol: k.proto, FirstSeen: e.first, LastSeen: e.last}
		out.fill(st)
		byKey[k] = out
	}
	if q.Protocol == "" || q.Protocol == ProtoTCP {
		for _, c := range m.conns {
			if !c.established || c.http || !c.closing.IsZero() {
				continue
			}
			client, server := m.resolve(c.key, c.client, c.server)
			k := edgeKey{client: client.id.ID(), server: server.id.ID(), proto: ProtoTCP}
			out := byKey[k]
			if out == nil {
				out = &Edge{Client: k.client, Server: k.server, Protocol: ProtoTCP, FirstSeen: c.start, LastSeen: c.lastActive}
				if e := m.edges[k]; e != nil {
					out.FirstSeen, out.LastSeen = e.first, e.last
				}
				byKey[k] = out
			}
			out.OpenConnections++
			out.FirstSeen = minTime(out.FirstSeen, c.start)
			for _, p := range []party{client, server} {
				id := p.id.ID()
				if n := m.nodes[id]; n != nil {
					continue
				}
				n := nodes[id]
				if n.ID == "" {
					n = Node{ID: id, Name: p.id.Name, Kind: p.id.Kind, PIDs: []uint32{}, FirstSeen: c.start, LastSeen: c.lastActive}
				}
				if p.pid != 0 && !slices.Contains(n.PIDs, p.pid) && len(n.PIDs) < maxPIDs {
					n.PIDs = append(n.PIDs, p.pid)
					slices.Sort(n.PIDs)
				}
				nodes[id] = n
			}
		}
	}
	for k, e := range byKey {
		snap.Edges = append(snap.Edges, *e)
		for _, id := range []string{k.client, k.server} {
			if n := m.nodes[id]; n != nil {
				addNode(n)
			}
		}
	}
	for _, n := range nodes {
		if n.PIDs == nil {
			n.PIDs = []uint32{}
		}
		snap.Nodes = append(snap.Nodes, n)
	}
	slices.SortFunc(snap.Nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(snap.Edges, func(a, b Edge) int {
		if c := cmp.Compare(b.Requests, a.Requests); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Client, b.Client); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Server, b.Server); c != 0 {
			return c
		}
		return cmp.Compare(a.Protocol, b.Protocol)
	})
	return snap
}

func (out *Edge) fill(st *stats) {
	out.Requests, out.Errors = st.requests, st.errors
	out.RequestBytes, out.ResponseBytes = st.reqBytes, st.respBytes
	out.Latency = Latency{
		Count:      st.latency.Count(),
		SumSeconds: float64(st.latencySumNS) / 1e9,
		P50Seconds: st.latency.Quantile(0.5) / 1e9,
		P99Seconds: st.latency.Quantile(0.99) / 1e9,
	}
}

// window sums the minute slots that overlap the last w (rounded up to
// whole minutes, the current minute included).
func (e *edge) window(now time.Time, w time.Duration) *stats {
	// The current, partial minute and the n whole minutes before it: at
	// least w of history, so a request a second ago is never left out.
	n := int64((w + slotWidth - 1) / slotWidth)
	n = min(n, numSlots-1)
	cur := now.Unix() / int64(slotWidth/time.Second)
	var st stats
	for i := range e.slots {
		sl := &e.slots[i]
		if sl.minute >= cur-n && sl.minute <= cur {
			st.merge(&sl.stats)
		}
	}
	return &st
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
