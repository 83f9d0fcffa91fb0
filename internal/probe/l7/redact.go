package l7

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/l7/http"
)

// streamKey names one direction of one byte stream: a connection's syscall
// records and its TLS plaintext records are separate streams.
type streamKey struct {
	conn  ConnID
	write bool
	tls   uint8 // 0: syscall data, 1: openssl, 2: go
}

// redactors hold the http.Redactor state of the most recently seen streams,
// so a header split across two records is still redacted. Bounded (LRU): a
// stream whose state was evicted restarts from a fresh one (see
// http.Redactor for how it resumes). Used by the ring reader only; the
// counters are read by the collector.
type redactors struct {
	max   int
	index map[streamKey]int32
	slots []redactSlot // grows up to max, then the oldest is reused
	head  int32        // most recently used, -1 when empty
	tail  int32        // least recently used

	redacted atomic.Uint64 // header values redacted
	evicted  atomic.Uint64 // states dropped for room
}

type redactSlot struct {
	key        streamKey
	r          http.Redactor
	prev, next int32
}

func newRedactors(max int) *redactors {
	return &redactors{max: max, index: make(map[streamKey]int32), head: -1, tail: -1}
}

// redactorsFor sizes the cache for a connection table: both directions of
// every connection, capped (≈ 120 bytes a stream).
func redactorsFor(maxConns uint32) *redactors {
	return newRedactors(int(min(2*uint64(maxConns), 1<<17)))
}

// redact blanks deny-listed header values in e.Data, in place, with the
// state of e's stream.
func (rs *redactors) redact(e *ConnData) {
	if len(e.Data) == 0 {
		return
	}
	k := streamKey{conn: e.Conn, write: e.Direction == "write"}
	switch e.TLS {
	case "":
	case "openssl":
		k.tls = 1
	default:
		k.tls = 2
	}
	if n := rs.get(k).Redact(e.Data); n > 0 {
		rs.redacted.Add(uint64(n))
	}
}

// get returns k's redactor, made most recently used; a new one when k is
// not cached.
func (rs *redactors) get(k streamKey) *http.Redactor {
	if i, ok := rs.index[k]; ok {
		rs.unlink(i)
		rs.pushFront(i)
		return &rs.slots[i].r
	}
	var i int32
	if len(rs.slots) < rs.max {
		rs.slots = append(rs.slots, redactSlot{})
		i = int32(len(rs.slots) - 1)
	} else {
		i = rs.tail
		rs.unlink(i)
		delete(rs.index, rs.slots[i].key)
		rs.evicted.Add(1)
	}
	rs.slots[i] = redactSlot{key: k}
	rs.index[k] = i
	rs.pushFront(i)
	return &rs.slots[i].r
}

func (rs *redactors) unlink(i int32) {
	s := &rs.slots[i]
	if s.prev >= 0 {
		rs.slots[s.prev].next = s.next
	} else {
		rs.head = s.next
	}
	if s.next >= 0 {
		rs.slots[s.next].prev = s.prev
	} else {
		rs.tail = s.prev
	}
}

func (rs *redactors) pushFront(i int32) {
	s := &rs.slots[i]
	s.prev, s.next = -1, rs.head
	if rs.head >= 0 {
		rs.slots[rs.head].prev = i
	}
	rs.head = i
	if rs.tail < 0 {
		rs.tail = i
	}
}

var (
	redactedDesc = prometheus.NewDesc("vigil_l7_headers_redacted_total",
		"Header values on the deny-list (Authorization, Cookie, Set-Cookie, X-Api-Key, ...) overwritten with '*' in conn_data records before they left the decoder.", nil, nil)
	redactEvictedDesc = prometheus.NewDesc("vigil_l7_redaction_states_evicted_total",
		"Per-stream redaction states dropped to make room (bounded LRU: twice max_connections, at most 131072); the stream's next record starts from a fresh state.", nil, nil)
)

type redactCollector struct{ rs *redactors }

func (c *redactCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- redactedDesc
	ch <- redactEvictedDesc
}

func (c *redactCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(redactedDesc, prometheus.CounterValue, float64(c.rs.redacted.Load()))
	ch <- prometheus.MustNewConstMetric(redactEvictedDesc, prometheus.CounterValue, float64(c.rs.evicted.Load()))
}
