// Package http turns the two byte streams of one TCP connection into
// HTTP/1.x exchanges. It is fed chunks in order, each one syscall's worth
// of data (possibly only a captured prefix, with the true length known), by
// the capture probe; it never sees bodies it does not need and returns none.
//
// The same Conn serves both sides of HTTP: the direction whose first bytes
// are a request line is the request stream (Write for a client, Read for a
// server), the other one must start with a status line. A connection that
// does not start that way is marked NotHTTP and every later chunk is
// ignored at the cost of one comparison.
package http

import (
	"bytes"
	"time"
)

// Direction of a chunk as seen from the local process.
type Direction uint8

const (
	// Write is data the local process wrote to the socket.
	Write Direction = iota
	// Read is data the local process read from the socket.
	Read
)

// Role of the local process in a connection.
type Role uint8

const (
	RoleUnknown Role = iota
	// RoleClient: the process writes requests and reads responses.
	RoleClient
	// RoleServer: the process reads requests and writes responses.
	RoleServer
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return "unknown"
}

// Detection is what the parser knows of a connection's protocol.
type Detection uint8

const (
	// Detecting: no complete start line seen yet.
	Detecting Detection = iota
	// IsHTTP: the request stream started with a valid request line.
	IsHTTP
	// NotHTTP: rejected; later chunks are ignored.
	NotHTTP
	// Upgraded: the connection left HTTP (101, CONNECT); later chunks are ignored.
	Upgraded
	// Closed: Close was called.
	Closed
)

// Defaults of Config.
const (
	DefaultMaxHeaderBytes = 256
	DefaultMaxInFlight    = 16
	// minLineBytes keeps a start line with a reasonable path readable even
	// when MaxHeaderBytes is set very low.
	minLineBytes = 64
	// maxKeptHeaders bounds Exchange.RequestHeaders/ResponseHeaders.
	maxKeptHeaders = 32
)

// Config bounds a connection's parser. The zero value means the defaults.
type Config struct {
	// MaxHeaderBytes is how many bytes of each message's start line and
	// headers are parsed (default 256). Header lines beyond it are only
	// scanned for framing (Content-Length, Transfer-Encoding) and the
	// message is counted in Stats.HeadersOverCap. It also bounds the length
	// of one line kept in memory, hence the path.
	MaxHeaderBytes int
	// MaxInFlight caps the requests waiting for their response (pipelining
	// depth, default 16); more are dropped and counted.
	MaxInFlight int
	// KeepHeaders returns the headers found within MaxHeaderBytes, with
	// deny-listed values redacted. Off by default (it allocates).
	KeepHeaders bool
	// RedactHeaders adds lower-case header names to the deny-list.
	RedactHeaders []string
}

func (c Config) withDefaults() Config {
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	return c
}

// Exchange is one request and its final response.
type Exchange struct {
	Role    Role
	Method  string // one of the standard method names
	Path    string // query string and fragment stripped; "*" or "" (CONNECT) possible
	Version string // "HTTP/1.1", "HTTP/1.0", "" if the request line was cut
	Host    string // Host header, or the authority of an absolute or CONNECT target
	Status  int    // final status (a 1xx interim response is never the status, 101 is)
	// Sizes are wire bytes: start line, headers and body (chunk framing
	// included). Body bytes that were not captured are counted from the
	// real chunk length and the declared Content-Length.
	RequestSize, ResponseSize         int64
	RequestBodySize, ResponseBodySize int64
	// Start is the time of the chunk holding the first request byte, End
	// the time of the chunk holding the last response byte (same clock as
	// the timestamps given to Feed, nanoseconds).
	Start, End int64
	// RequestHeaders and ResponseHeaders are set only with
	// Config.KeepHeaders: headers within MaxHeaderBytes, deny-listed values
	// replaced by Redacted.
	RequestHeaders, ResponseHeaders []Header
	// Truncated: part of the exchange was not captured or not parsed
	// (framing lost, connection closed mid-body); sizes may be short.
	Truncated bool
}

// Duration from the first request byte to the last response byte.
func (e *Exchange) Duration() time.Duration { return time.Duration(e.End - e.Start) }

// state of one direction's framing.
type state uint8

const (
	stStart      state = iota // expecting a start line
	stHeaders                 // header lines until the empty line
	stBody                    // Content-Length body, remaining bytes
	stChunkSize               // chunk-size line
	stChunkData               // chunk data, remaining bytes
	stChunkEnd                // CRLF after chunk data
	stTrailers                // trailer lines after the last chunk
	stUntilClose              // body delimited by connection close
	stResync                  // framing lost: wait for a chunk starting a message
)

// message is the request or response being read.
type message struct {
	start, last   int64
	size, body    int64
	hdr           int64 // bytes of start line and headers, once known
	contentLength int64 // -1 when absent
	chunked       bool
	headersDone   bool
	overCap       bool
	truncated     bool
	done          bool
	pushed        bool
	method, path  string
	version, host string
	status        int
	headers       []Header
}

func (m *message) reset(ts int64) {
	*m = message{start: ts, last: ts, contentLength: -1}
}

// stream is one direction of the connection.
type stream struct {
	request   bool // carries requests
	seen      bool // a valid start line was seen (detection passed)
	state     state
	line      []byte // current line, at most lineCap bytes kept
	lineOver  bool
	remaining int64
	m         *message // current message, nil between messages
	own       message  // response streams reuse this one
	req       *message // response stream: the request being answered
}

// Conn parses one TCP connection. It is not safe for concurrent use; the
// caller owns one per connection and feeds both directions in order.
type Conn struct {
	cfg     Config
	lineCap int
	stats   *Stats
	det     Detection
	role    Role
	reqDir  Direction
	req     stream
	resp    stream
	pending []*message // ring of requests waiting for a response
	head, n int
	out     []Exchange
}

// NewConn returns a parser for one connection; stats may be shared.
func NewConn(cfg Config, stats *Stats) *Conn {
	cfg = cfg.withDefaults()
	if stats == nil {
		stats = new(Stats)
	}
	lc := max(cfg.MaxHeaderBytes, minLineBytes)
	c := &Conn{cfg: cfg, lineCap: lc, stats: stats}
	c.req.request = true
	return c
}

// Detection reports what is known of the connection's protocol.
func (c *Conn) Detection() Detection { return c.det }

// Role of the local process, known after the first chunk.
func (c *Conn) Role() Role { return c.role }

// Feed parses one chunk: data is the captured prefix of size bytes
// transferred at ts (nanoseconds). It returns the exchanges completed by
// this chunk; the slice is reused by the next call.
func (c *Conn) Feed(dir Direction, data []byte, size int, ts int64) []Exchange {
	c.out = c.out[:0]
	if c.det >= NotHTTP {
		return nil
	}
	if size < len(data) {
		data = data[:size]
	}
	gap := int64(size - len(data))
	if gap > 0 {
		c.stats.CaptureGaps.Add(1)
	}
	if c.role == RoleUnknown {
		if len(data) == 0 {
			if gap > 0 { // nothing to judge the protocol by
				c.reject()
			}
			return nil
		}
		c.reqDir = dir
		c.role = RoleServer
		if dir == Write {
			c.role = RoleClient
		}
	}
	s := &c.resp
	if dir == c.reqDir {
		s = &c.req
	}
	c.feed(s, data, gap, ts)
	return c.out
}

// Close ends the connection at ts: a response delimited by the close (or
// cut by it) is completed, requests still waiting are counted unanswered.
func (c *Conn) Close(ts int64) []Exchange {
	c.out = c.out[:0]
	if c.det >= NotHTTP {
		c.det = Closed
		return nil
	}
	s := &c.resp
	if s.m != nil && s.req != nil {
		if s.state != stUntilClose && s.state != stResync {
			s.m.truncated = true
		}
		c.endMessage(s)
	}
	c.stats.Unanswered.Add(uint64(c.n))
	c.n = 0
	c.det = Closed
	return c.out
}

func (c *Conn) feed(s *stream, data []byte, gap int64, ts int64) {
	if s.state == stResync && len(data) > 0 && startsMessage(data, s.request) {
		if s.m != nil {
			c.endMessage(s)
		}
		s.state = stStart
	}
	for len(data) > 0 && c.det < NotHTTP {
		var n int
		switch s.state {
		case stStart:
			if !s.seen && len(s.line) == 0 {
				// judge the first bytes before buffering anything
				p := data[:min(len(data), 16)]
				if i := bytes.IndexAny(p, "\r\n"); i >= 0 {
					p = p[:i]
				}
				if !c.prefixOK(s, p) {
					c.reject()
					return
				}
			}
			if s.m == nil {
				c.begin(s, ts)
			}
			var done bool
			n, done = c.readLine(s, data)
			c.account(s, n, ts)
			if !done {
				if !s.seen && !c.prefixOK(s, s.line) {
					c.reject()
					return
				}
				break
			}
			line := trimCR(s.line[: len(s.line)-1 : len(s.line)-1])
			if s.lineOver {
				line = s.line
			}
			if len(line) == 0 && s.seen { // tolerated empty line between messages
				s.m = nil
				s.line = s.line[:0]
				break
			}
			c.startLine(s, line, s.lineOver)
			s.line, s.lineOver = s.line[:0], false
		case stHeaders, stChunkSize, stChunkEnd, stTrailers:
			var done bool
			n, done = c.readLine(s, data)
			c.account(s, n, ts)
			if !done {
				break
			}
			line := s.line
			if !s.lineOver {
				line = trimCR(line[:len(line)-1])
			}
			c.lineDone(s, line)
			s.line, s.lineOver = s.line[:0], false
		case stBody, stChunkData:
			n = int(min(s.remaining, int64(len(data))))
			c.account(s, n, ts)
			s.m.body += int64(n)
			s.remaining -= int64(n)
			if s.remaining == 0 {
				if s.state == stBody {
					c.endMessage(s)
				} else {
					s.state = stChunkEnd
				}
			}
		case stUntilClose, stResync:
			n = len(data)
			c.account(s, n, ts)
			if s.m != nil && s.state == stUntilClose {
				s.m.body += int64(n)
			}
		}
		data = data[n:]
	}
	if gap > 0 && c.det < NotHTTP {
		c.gap(s, gap, ts)
	}
}

// readLine moves data up to and including '\n' into the line buffer,
// keeping at most lineCap bytes; it returns the bytes consumed.
func (c *Conn) readLine(s *stream, data []byte) (int, bool) {
	i := bytes.IndexByte(data, '\n')
	n := len(data)
	if i >= 0 {
		n = i + 1
	}
	if s.line == nil { // allocated on first use: most rejected connections never need it
		s.line = make([]byte, 0, c.lineCap)
	}
	take := min(n, c.lineCap-len(s.line))
	if take < n && !s.lineOver {
		s.lineOver = true
		c.stats.LongLines.Add(1)
	}
	s.line = append(s.line, data[:take]...)
	return n, i >= 0
}

func (c *Conn) account(s *stream, n int, ts int64) {
	if s.m == nil {
		return
	}
	s.m.size += int64(n)
	s.m.last = ts
}

func (c *Conn) begin(s *stream, ts int64) {
	if s.request {
		s.m = &message{}
	} else {
		s.m = &s.own
	}
	s.m.reset(ts)
}

// prefixOK judges the first bytes of a stream before its first line is
// complete, so that binary protocols are rejected without buffering.
func (c *Conn) prefixOK(s *stream, line []byte) bool {
	line = trimCR(line)
	if s.request {
		v, _ := checkRequestLine(line, false)
		return v != invalid
	}
	v, _, _ := checkStatusLine(line, false)
	return v != invalid
}

// startLine handles a request or status line; partial is true when its end
// was not seen (cut by the line buffer or by a capture gap).
func (c *Conn) startLine(s *stream, line []byte, partial bool) {
	m := s.m
	if partial {
		m.truncated = true
	}
	if s.request {
		v, rl := checkRequestLine(line, !partial)
		if v == invalid || v == undecided && (!partial || len(rl.target) == 0) {
			c.badStart(s)
			return
		}
		m.method, m.version = rl.method, rl.version
		m.path, m.host = splitTarget(rl.method, rl.target)
		s.seen = true
		if c.det == Detecting {
			c.det = IsHTTP
		}
		// A new request while the previous response is still being
		// resynchronised, with nothing else waiting: that response is over.
		if r := &c.resp; r.state == stResync && r.m != nil && c.n == 0 {
			c.endMessage(r)
			r.state = stStart
		}
		s.state = stHeaders
		return
	}
	v, code, _ := checkStatusLine(line, !partial)
	if v == invalid || v == undecided && code == 0 {
		c.badStart(s)
		return
	}
	s.seen = true
	m.status = code
	if code >= 200 || code == 101 {
		s.req = c.pop()
	}
	s.state = stHeaders
}

func (c *Conn) badStart(s *stream) {
	if !s.seen {
		c.reject()
		return
	}
	c.lostSync(s)
}

// lineDone handles a complete header, chunk-size, chunk-end or trailer line.
func (c *Conn) lineDone(s *stream, line []byte) {
	switch s.state {
	case stHeaders:
		if len(line) == 0 {
			c.headersDone(s)
			return
		}
		c.header(s, line)
	case stChunkSize:
		size, ok := parseChunkSize(line)
		if !ok {
			c.lostSync(s)
			return
		}
		if size == 0 {
			s.state = stTrailers
			return
		}
		s.remaining = size
		s.state = stChunkData
	case stChunkEnd:
		if len(line) != 0 {
			c.lostSync(s)
			return
		}
		s.state = stChunkSize
	case stTrailers:
		if len(line) == 0 {
			c.endMessage(s)
		}
	}
}

func (c *Conn) header(s *stream, line []byte) {
	m := s.m
	within := m.size <= int64(c.cfg.MaxHeaderBytes) && !s.lineOver
	if !within && !m.overCap {
		m.overCap = true
		c.stats.HeadersOverCap.Add(1)
	}
	name, value, ok := splitHeader(line)
	if !ok {
		return // tolerated: folded or junk line
	}
	switch {
	case headerIs(name, "content-length"):
		n, ok := parseDecimal(value)
		if !ok || m.contentLength >= 0 && m.contentLength != n {
			c.lostSync(s)
			return
		}
		m.contentLength = n
	case headerIs(name, "transfer-encoding"):
		// chunked must be the final coding; anything else leaves the
		// length to Content-Length or the close.
		v := bytes.TrimSpace(value)
		if i := bytes.LastIndexByte(v, ','); i >= 0 {
			v = bytes.TrimSpace(v[i+1:])
		}
		m.chunked = bytes.EqualFold(v, []byte("chunked"))
	case within && s.request && m.host == "" && headerIs(name, "host"):
		m.host = string(value)
	}
	if within && c.cfg.KeepHeaders && len(m.headers) < maxKeptHeaders {
		h := Header{Name: string(name)}
		if IsDenied(h.Name, c.cfg.RedactHeaders) {
			h.Value = Redacted
		} else {
			h.Value = string(value)
		}
		m.headers = append(m.headers, h)
	}
}

func (c *Conn) headersDone(s *stream) {
	m := s.m
	m.hdr = m.size
	m.headersDone = true
	if s.request {
		c.push(m)
		switch {
		case m.chunked:
			s.state = stChunkSize
		case m.contentLength > 0:
			s.remaining = m.contentLength
			s.state = stBody
		default: // a request without framing has no body
			c.endMessage(s)
		}
		return
	}
	code := m.status
	if code < 200 && code != 101 { // interim: the final response follows
		s.m = nil
		s.state = stStart
		return
	}
	method := ""
	if s.req != nil {
		method = s.req.method
	}
	if code == 101 || method == "CONNECT" && code < 300 {
		c.endMessage(s)
		c.det = Upgraded
		c.stats.Upgraded.Add(1)
		return
	}
	switch {
	case method == "HEAD" || code == 204 || code == 304:
		c.endMessage(s)
	case m.chunked:
		s.state = stChunkSize
	case m.contentLength == 0:
		c.endMessage(s)
	case m.contentLength > 0:
		s.remaining = m.contentLength
		s.state = stBody
	default:
		s.state = stUntilClose
	}
}

// gap accounts for size bytes that were transferred but not captured.
func (c *Conn) gap(s *stream, gap int64, ts int64) {
	m := s.m
	if m != nil {
		m.last = ts
	}
	switch s.state {
	case stBody, stChunkData:
		k := min(gap, s.remaining)
		m.size += k
		m.body += k
		s.remaining -= k
		gap -= k
		if s.remaining == 0 {
			if s.state == stBody {
				c.endMessage(s)
			} else {
				s.state = stChunkEnd
			}
		}
		if gap > 0 { // uncaptured bytes past the message: the next one is lost
			if s.m != nil {
				s.m.size += gap
			}
			c.lostSync(s)
		}
	case stUntilClose, stResync:
		if m != nil {
			m.size += gap
			if s.state == stUntilClose {
				m.body += gap
			}
		}
	case stStart:
		if m != nil && len(s.line) > 0 {
			line := trimCR(s.line) // a capture cut between CR and LF
			s.line, s.lineOver = s.line[:0], false
			c.startLine(s, line, true)
			if c.det >= NotHTTP || s.m == nil {
				return
			}
			s.m.size += gap
			if s.state != stResync {
				c.lostSync(s)
			}
			return
		}
		if !s.seen {
			c.reject()
			return
		}
		c.lostSync(s)
	default:
		m.size += gap
		c.lostSync(s)
	}
}

// lostSync abandons framing: the current message is kept (truncated) and
// completed when a chunk starts with a new start line or at close.
func (c *Conn) lostSync(s *stream) {
	c.stats.LostSync.Add(1)
	s.state = stResync
	s.line, s.lineOver = s.line[:0], false
	if s.m == nil {
		return
	}
	s.m.truncated = true
	if s.request && !s.m.pushed && s.m.method != "" {
		c.push(s.m)
	}
}

func (c *Conn) endMessage(s *stream) {
	m := s.m
	s.m = nil
	s.state = stStart
	if m == nil {
		return
	}
	if !m.headersDone {
		m.hdr = m.size
	}
	m.done = true
	if s.request {
		return
	}
	req := s.req
	s.req = nil
	if req == nil {
		c.stats.OrphanResponses.Add(1)
		return
	}
	// A response may end before its request's body (an early 413): the
	// request size is what was transferred by then, not what was declared.
	reqSize, reqBody := req.size, req.body
	e := Exchange{
		Role: c.role, Method: req.method, Path: req.path, Version: req.version, Host: req.host,
		Status:      m.status,
		RequestSize: reqSize, RequestBodySize: reqBody,
		ResponseSize: m.size, ResponseBodySize: m.body,
		Start: req.start, End: m.last,
		RequestHeaders: req.headers, ResponseHeaders: m.headers,
		Truncated: req.truncated || m.truncated,
	}
	c.stats.Exchanges.Add(1)
	if e.Truncated {
		c.stats.Truncated.Add(1)
	}
	c.out = append(c.out, e)
}

func (c *Conn) push(m *message) {
	m.pushed = true
	if c.pending == nil {
		c.pending = make([]*message, c.cfg.MaxInFlight)
	}
	if c.n == len(c.pending) {
		c.stats.InFlightDropped.Add(1)
		return
	}
	c.pending[(c.head+c.n)%len(c.pending)] = m
	c.n++
}

func (c *Conn) pop() *message {
	if c.n == 0 {
		return nil
	}
	m := c.pending[c.head]
	c.pending[c.head] = nil
	c.head = (c.head + 1) % len(c.pending)
	c.n--
	return m
}

func (c *Conn) reject() {
	c.det = NotHTTP
	c.stats.NotHTTP.Add(1)
	for c.n > 0 {
		c.pop()
	}
	c.req.m, c.resp.m, c.resp.req = nil, nil, nil
	c.req.line, c.resp.line = c.req.line[:0], c.resp.line[:0]
}

// splitTarget returns the path (query and fragment stripped) and, for an
// absolute or authority target, the host.
func splitTarget(method string, t []byte) (path, host string) {
	if method == "CONNECT" {
		return "", string(t)
	}
	if len(t) > 0 && t[0] != '/' && t[0] != '*' { // absolute form
		if i := bytes.Index(t, []byte("://")); i >= 0 {
			t = t[i+3:]
			end := bytes.IndexAny(t, "/?#")
			if end < 0 {
				end = len(t)
			}
			host = string(t[:end])
			t = t[end:]
		}
	}
	if i := bytes.IndexAny(t, "?#"); i >= 0 {
		t = t[:i]
	}
	if len(t) == 0 {
		return "/", host
	}
	return string(t), host
}

// parseDecimal parses a Content-Length value.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseChunkSize parses "1a2b[;ext]".
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
