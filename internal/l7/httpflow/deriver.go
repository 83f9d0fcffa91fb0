package httpflow

import (
	"github.com/vigilproject/vigil/internal/servicemap/service"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/event/derive"
	"github.com/vigilproject/vigil/internal/l7/http"
	"github.com/vigilproject/vigil/internal/probe/l7"
	"github.com/vigilproject/vigil/internal/schema"
)

// Name is the deriver's name (metric label deriver="http").
const Name = "http"

// Flow is the HTTP deriver of one agent: its settings and what outlives the
// deriver's restarts (it runs only while http events are consumed): parser
// statistics, stream counters and the RED metrics.
type Flow struct {
	cfg     Config
	headers map[string]bool
	stats   http.Stats

	// streams counts the live streams of the current run; a restarted
	// deriver starts empty with a new counter.
	streams atomic.Pointer[atomic.Int64]
	closed  [3]atomic.Uint64 // by closeReason
	skipped atomic.Uint64    // chunks before a stream's first request byte
	red     *red
}

// New returns the deriver of one agent for cfg (l7.http); labelLimit
// (metrics.label_limit) caps the service and server_address labels.
func New(cfg Config, labelLimit int) *Flow {
	f := &Flow{cfg: cfg, headers: cfg.headerSet(), red: newRED(cfg, labelLimit)}
	f.streams.Store(new(atomic.Int64))
	return f
}

// Spec is the deriver as the derive runner runs it: conn_data in, http out.
func (f *Flow) Spec() derive.Spec {
	return derive.Spec{
		Name:     Name,
		Help:     "parses the l7 probe's connection data as HTTP/1.x into http events",
		Consumes: []event.Kind{l7.KindConnData},
		Produces: []*schema.Kind{httpKind},
		Queue:    f.cfg.QueueSize,
		New:      func(env derive.Env) derive.Deriver { return f.newDeriver(env) },
	}
}

// closeReason says why a stream's parser was closed.
type closeReason int

const (
	closedIdle    closeReason = iota // no data for idle_timeout
	closedReused                     // the fd number now names another connection
	closedEvicted                    // max_streams reached: least recently used
)

var closeReasonNames = [...]string{"idle", "reused", "evicted"}

// streamKey names a byte stream: a connection's syscall data and the
// plaintext a TLS library handled on it are two streams. The generation is
// kept in the stream: a new one on the same key means the fd was reused.
type streamKey struct {
	pid, fd uint32
	tls     string
}

// stream is one connection's parser and what its events need.
type stream struct {
	key  streamKey
	gen  uint64
	conn *http.Conn // nil once the stream is not HTTP (or left HTTP)
	// started: the first chunk in the request direction was seen; data
	// before it (a response to a request from before the agent started, or
	// before an idle close) is skipped so the parser starts on a request.
	started bool
	server  bool
	seeded  bool
	last    int64     // ns of the latest chunk (event time)
	seen    time.Time // deriver clock when it was last fed, for the idle close
	hdr     event.Header
	local   string
	lport   uint16
	remote  string
	rport   uint16

	prev, next *stream // LRU order: head is the least recently used
}

// deriver is the state of one run of the HTTP deriver; it is used by the
// runner's goroutine only.
type deriver struct {
	f       *Flow
	env     derive.Env
	pcfg    http.Config
	streams map[streamKey]*stream
	live    *atomic.Int64 // len(streams), for the metrics
	head    *stream       // least recently used
	tail    *stream
	// now is the wall clock of the latest Tick. Idleness is measured on
	// it, not on event times: a deriver running behind its queue must not
	// close streams whose next chunks are still queued.
	now time.Time
}

func (f *Flow) newDeriver(env derive.Env) *deriver {
	live := new(atomic.Int64)
	f.streams.Store(live)
	return &deriver{
		f: f, env: env, live: live, now: time.Now(),
		pcfg:    http.Config{KeepHeaders: len(f.headers) > 0},
		streams: make(map[streamKey]*stream),
	}
}

// Consume feeds one conn_data chunk to its stream's parser.
func (d *deriver) Consume(ev event.Event) {
	cd, ok := ev.(*l7.ConnData)
	if !ok {
		return
	}
	k := streamKey{cd.Conn.PID, cd.Conn.FD, cd.TLS}
	s := d.streams[k]
	if s != nil && s.gen != cd.Conn.Generation {
		// The fd was closed and reused: the old connection is over.
		d.close(s, closedReused)
		s = nil
	}
	if s == nil {
		s = d.open(k, cd)
	} else {
		d.touch(s)
	}
	ts := cd.Time.UnixNano()
	s.last, s.seen = ts, d.now
	s.hdr = cd.Header
	if s.conn == nil {
		return // not HTTP: one map lookup per chunk
	}
	dir := http.Read
	if cd.Direction == "write" {
		dir = http.Write
	}
	if !s.started {
		if (dir == http.Read) != s.server {
			d.f.skipped.Add(1)
			return
		}
		s.started = true
	}
	size := len(cd.Data)
	if cd.Length > uint64(size) {
		size = int(min(cd.Length, 1<<40))
	}
	xs := s.conn.Feed(dir, cd.Data, size, ts)
	for i := range xs {
		d.emit(s, &xs[i])
	}
	if s.conn.Detection() >= http.NotHTTP {
		s.conn = nil // rejected or upgraded: keep only the key so later chunks are dropped
	}
}

// Tick closes the streams not fed for longer than idle_timeout, oldest
// first (about one tick of slack: feeding is stamped with the last tick).
func (d *deriver) Tick(now time.Time) {
	d.now = now
	limit := now.Add(-d.f.cfg.IdleTimeout)
	for d.head != nil && !d.head.seen.After(limit) {
		d.close(d.head, closedIdle)
	}
}

func (d *deriver) open(k streamKey, cd *l7.ConnData) *stream {
	if len(d.streams) >= d.f.cfg.MaxStreams {
		d.env.Drop("streams_full")
		d.close(d.head, closedEvicted)
	}
	s := &stream{
		key: k, gen: cd.Conn.Generation,
		conn:   http.NewConn(d.pcfg, &d.f.stats),
		server: cd.Role == "server",
		seeded: cd.Seeded,
		local:  cd.SAddr, lport: cd.SPort, remote: cd.DAddr, rport: cd.DPort,
	}
	d.streams[k] = s
	d.live.Add(1)
	s.prev = d.tail
	if d.tail != nil {
		d.tail.next = s
	} else {
		d.head = s
	}
	d.tail = s
	return s
}

// touch moves s to the most recently used end.
func (d *deriver) touch(s *stream) {
	if d.tail == s {
		return
	}
	d.unlink(s)
	s.prev = d.tail
	d.tail.next = s
	d.tail = s
}

func (d *deriver) unlink(s *stream) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		d.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		d.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// close flushes s (a response delimited by the connection's end completes)
// and forgets it.
func (d *deriver) close(s *stream, why closeReason) {
	if s.conn != nil {
		xs := s.conn.Close(s.last)
		for i := range xs {
			d.emit(s, &xs[i])
		}
		s.conn = nil
	}
	d.unlink(s)
	delete(d.streams, s.key)
	d.live.Add(-1)
	d.f.closed[why].Add(1)
}

// emit publishes one exchange as an http event.
func (d *deriver) emit(s *stream, x *http.Exchange) {
	e := &Exchange{
		Header:        s.hdr,
		Side:          x.Role.String(),
		Conn:          l7.ConnID{PID: s.key.pid, FD: s.key.fd, Generation: s.gen},
		TLS:           s.key.tls,
		Method:        x.Method,
		Path:          x.Path,
		Route:         http.Template(x.Path),
		Version:       x.Version,
		Host:          x.Host,
		Status:        x.Status,
		RequestBytes:  x.RequestSize,
		ResponseBytes: x.ResponseSize,
		RequestBody:   x.RequestBodySize,
		ResponseBody:  x.ResponseBodySize,
		LocalAddr:     s.local,
		LocalPort:     s.lport,
		RemoteAddr:    s.remote,
		RemotePort:    s.rport,
		Truncated:     x.Truncated,
		Seeded:        s.seeded,
	}
	e.Kind = KindHTTP
	e.Time = time.Unix(0, x.End).In(s.hdr.Time.Location())
	if x.End > x.Start {
		e.DurationNS = uint64(x.End - x.Start)
	}
	e.Service = service.Of(&s.hdr.Process).Name // the service map names its nodes the same way
	if d.f.headers != nil {
		e.RequestHeaders = d.keep(x.RequestHeaders)
		e.ResponseHeaders = d.keep(x.ResponseHeaders)
	}
	d.env.Emit(e)
}

// keep returns the allow-listed headers; the parser already redacted
// credential values and Validate refuses to list them, so a credential can
// only appear here as http.Redacted.
func (d *deriver) keep(hs []http.Header) map[string]string {
	var m map[string]string
	for _, h := range hs {
		name := strings.ToLower(h.Name)
		if !d.f.headers[name] || http.IsDenied(name, nil) {
			continue
		}
		if m == nil {
			m = make(map[string]string, len(d.f.headers))
		}
		m[name] = h.Value
	}
	return m
}
