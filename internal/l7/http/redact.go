package http

import (
	"bytes"
	"strings"
)

// RedactByte replaces every byte of a deny-listed header's value in a
// stream redacted by a Redactor.
const RedactByte = '*'

// Redactor blanks, in place, the values of deny-listed headers (IsDenied's
// list) in one direction of an HTTP/1.x stream fed chunk by chunk: the
// name, the colon, the spaces after it and the line ending are kept, every
// other byte of the value becomes RedactByte, so lengths and the parser's
// framing are unchanged. State carries over between chunks, so a header
// split anywhere across two chunks is still redacted.
//
// Only header blocks are touched: the lines after a request or status line
// up to the blank line. Bodies are not framed: after the blank line the
// redactor looks for the next start line at every line start and at the
// start of every chunk (a new write), so a body line "Authorization: x" is
// left alone. A Redactor that starts in the middle of a stream (a
// connection open before capture, a state evicted from a cache) treats a
// first line shaped like a header ("Name: value") as part of a header
// block, so resuming inside a block errs on the side of redacting.
//
// Chunks with gaps between them (a truncated capture) are treated as
// contiguous: a value cut by truncation and continued in the next chunk
// stays redacted up to its line end, unless that chunk opens with a start
// line (the next message). The zero value is ready to use.
type Redactor struct {
	body    bool  // outside a header block (false: in one, or at stream start)
	st      uint8 // position in the current line (lsCollect, ...)
	n       uint8 // bytes in buf
	token   bool  // buf holds token characters only
	start   bool  // buf may still begin a start line
	cr      bool  // the line so far is a lone CR
	started bool  // a line has been classified (the first one decides resume)
	denied  bool  // the last header line was denied (for obsolete line folding)
	buf     [maxNameLen]byte
}

// States within a line.
const (
	lsCollect  uint8 = iota // line start: collecting bytes until the line is classified
	lsLongName              // a header name longer than buf: denied, until its colon
	lsSpace                 // after a denied header's colon: spaces kept
	lsStar                  // inside a denied value: every byte but CR becomes RedactByte
	lsSkip                  // the rest of the line is left as is
)

// maxNameLen bounds the bytes kept to classify a line; a longer header name
// is redacted whatever it is (no deny-list name is that long).
const maxNameLen = 64

// Reset forgets the stream's state (a new connection).
func (r *Redactor) Reset() { *r = Redactor{} }

// Redact redacts data in place and returns how many header values it began
// to redact (a value split across chunks counts once).
func (r *Redactor) Redact(data []byte) int {
	redacted := 0
	// A new write may start a new message: after a body, and also inside a
	// header line when the chunk opens with a start line (the rest of the
	// previous message was lost to a truncated capture).
	if r.st != lsCollect && (r.body || startsLine(data)) || r.body && r.cr {
		r.newLine()
	}
	for i := 0; i < len(data); {
		switch r.st {
		case lsSkip:
			j := bytes.IndexByte(data[i:], '\n')
			if j < 0 {
				return redacted
			}
			i += j + 1
			r.newLine()
		case lsStar:
			j := i
			for ; j < len(data) && data[j] != '\n'; j++ {
				if data[j] != '\r' {
					data[j] = RedactByte
				}
			}
			if j == len(data) {
				return redacted
			}
			i = j + 1
			r.newLine()
		case lsSpace:
			for ; i < len(data) && r.st == lsSpace; i++ {
				switch data[i] {
				case ' ', '\t', '\r':
				case '\n':
					r.newLine()
				default:
					data[i] = RedactByte
					r.st = lsStar
				}
			}
		case lsLongName:
			for i < len(data) && tokenChars[data[i]] {
				i++
			}
			if i == len(data) {
				break
			}
			c := data[i]
			i++
			switch {
			case c == ':':
				redacted++
				r.denied, r.st = true, lsSpace
			case c == '\n':
				r.body = true
				r.newLine()
			case !isTokenChar(c):
				r.endLine(false)
			}
		case lsCollect:
			if !r.start && r.token && !r.body {
				// Inside a header name: take its token bytes at once.
				for i < len(data) && int(r.n) < len(r.buf) && tokenChars[data[i]] {
					r.buf[r.n] = data[i]
					r.n++
					i++
				}
				if i == len(data) {
					break
				}
			}
			c := data[i]
			i++
			if r.collect(c) {
				redacted++
			}
		}
	}
	return redacted
}

// newLine starts the next line.
func (r *Redactor) newLine() { r.st, r.n, r.token, r.start, r.cr = lsCollect, 0, true, true, false }

// collect takes one byte at a line start and classifies the line as soon as
// it can: blank line, header, folded continuation, start line, or other. It
// reports whether a denied header's value begins.
func (r *Redactor) collect(c byte) bool {
	if r.n == 0 && !r.cr {
		r.token, r.start = true, true
		if c == '\r' {
			r.cr = true
			return false
		}
	}
	if c == '\n' {
		// A blank line ends the header block, and so does a line that is
		// neither a header nor a start line.
		r.body = true
		r.started = true
		r.newLine()
		return false
	}
	if r.cr { // CR then something else: not a header line
		r.endLine(false)
		return false
	}
	if r.n == 0 && (c == ' ' || c == '\t') && !r.body && r.started {
		// Obsolete line folding continues the previous header's value.
		if r.denied {
			r.st = lsSpace
		} else {
			r.st = lsSkip
		}
		return false
	}
	if c == ':' && r.token && r.n > 0 && !r.body {
		r.started = true
		r.denied = deniedName(r.buf[:r.n])
		if r.denied {
			r.st = lsSpace
			return true
		}
		r.st = lsSkip
		return false
	}
	if !isTokenChar(c) {
		r.token = false
	}
	if int(r.n) == len(r.buf) {
		if r.token && !r.body {
			r.started = true
			r.st = lsLongName
			return false
		}
		r.endLine(false)
		return false
	}
	r.buf[r.n] = c
	r.n++
	// Methods and "HTTP" are tokens of at most 7 bytes: a start line is
	// judged at its first byte, then once its first word ends.
	if r.start && r.n == 1 && !startChars[c] {
		r.start = false
	} else if r.start && (!r.token || r.n > 7) {
		switch startVerdict(r.buf[:r.n]) {
		case valid:
			r.endLine(true)
			return false
		case invalid:
			r.start = false
		}
	}
	if !r.start && (!r.token || r.body) {
		r.endLine(false)
	}
	return false
}

// endLine classifies the current line as a start line (a header block
// follows it) or as another line, and skips the rest of it.
func (r *Redactor) endLine(start bool) {
	r.body = !start // a line that is no header ends a block, or the stream start
	r.started, r.denied, r.st = true, false, lsSkip
}

// startVerdict judges the first bytes of a line as a request line ("GET /",
// "OPTIONS *", "CONNECT host") or a status line ("HTTP/1.1 2"): valid once
// enough is seen, undecided for a prefix of one, invalid otherwise.
func startVerdict(b []byte) verdict {
	if !startChars[b[0]] {
		return invalid
	}
	if b[0] == 'H' {
		const status = "HTTP/1."
		n := min(len(b), len(status))
		if string(b[:n]) == status[:n] {
			switch {
			case len(b) <= len(status):
				return undecided
			case b[7] != '0' && b[7] != '1':
				return invalid
			case len(b) == 8:
				return undecided
			case b[8] != ' ':
				return invalid
			case len(b) == 9:
				return undecided
			case b[9] >= '1' && b[9] <= '5':
				return valid
			}
			return invalid
		}
	}
	v := invalid
	for _, m := range methods {
		switch {
		case len(b) <= len(m):
			if m[:len(b)] == string(b) {
				v = undecided
			}
		case m == string(b[:len(m)]):
			if b[len(m)] != ' ' {
				continue
			}
			if len(b) == len(m)+1 {
				return undecided
			}
			if validTargetStart(m, b[len(m)+1:]) {
				return valid
			}
			return invalid
		}
	}
	return v
}

// startsLine reports whether data opens with a start line.
func startsLine(data []byte) bool {
	return len(data) > 0 && startVerdict(data[:min(len(data), 10)]) == valid
}

// deniedName is IsDenied for a name in any case, without allocating: one
// map lookup for the names, one pass for the parts.
func deniedName(name []byte) bool {
	var lower [maxNameLen]byte
	l := lower[:len(name)]
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		l[i] = c
	}
	if deniedSet[string(l)] {
		return true
	}
	for i, c := range l {
		for _, p := range partsByFirst[c] {
			if len(l)-i >= len(p) && string(l[i:i+len(p)]) == p {
				return true
			}
		}
	}
	return false
}

// deniedSet and partsByFirst index deniedNames and deniedParts (the
// parser's lists) for deniedName.
var (
	deniedSet    = map[string]bool{}
	partsByFirst [256][]string
)

func init() {
	for _, d := range deniedNames {
		deniedSet[d] = true
	}
	for _, p := range deniedParts {
		partsByFirst[p[0]] = append(partsByFirst[p[0]], p)
	}
}

// isTokenChar reports whether c may appear in a header name (RFC 9110 tchar).
func isTokenChar(c byte) bool { return tokenChars[c] }

// tokenChars are RFC 9110's tchar; startChars the first bytes of a start line.
var tokenChars, startChars = func() (t, s [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	s['H'] = true
	for _, m := range methods {
		s[m[0]] = true
	}
	return t, s
}()
