package http

import "bytes"

// methods are the request methods detection accepts (RFC 9110 plus PATCH).
// Returned Method strings are these constants, so parsing allocates nothing
// for them.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

const (
	version10 = "HTTP/1.0"
	version11 = "HTTP/1.1"
)

// verdict of a (possibly incomplete) start line.
type verdict uint8

const (
	undecided verdict = iota // a valid prefix, need more bytes
	valid
	invalid
)

// requestLine is a parsed request line.
type requestLine struct {
	method  string
	target  []byte // aliases the line buffer
	version string
}

// checkRequestLine judges line (without its line ending). When complete is
// false the line may continue: a valid prefix is undecided. Detection uses it
// on the first bytes of a stream, so a TLS record, a RESP array or random
// bytes are rejected after one or two bytes.
func checkRequestLine(line []byte, complete bool) (verdict, requestLine) {
	var rl requestLine
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		if complete || len(line) > len("OPTIONS") {
			return invalid, rl
		}
		for _, m := range methods {
			if len(line) <= len(m) && m[:len(line)] == string(line) {
				return undecided, rl
			}
		}
		return invalid, rl
	}
	for _, m := range methods {
		if m == string(line[:sp]) {
			rl.method = m
			break
		}
	}
	if rl.method == "" {
		return invalid, rl
	}
	rest := line[sp+1:]
	if len(rest) == 0 {
		if complete {
			return invalid, rl
		}
		return undecided, rl
	}
	if !validTargetStart(rl.method, rest) {
		return invalid, rl
	}
	sp = bytes.IndexByte(rest, ' ')
	target := rest
	if sp >= 0 {
		target = rest[:sp]
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return invalid, rl
		}
	}
	rl.target = target
	if sp < 0 {
		if complete {
			return invalid, rl // HTTP/0.9 is not supported
		}
		return undecided, rl
	}
	v := rest[sp+1:]
	switch {
	case string(v) == version11:
		rl.version = version11
	case string(v) == version10:
		rl.version = version10
	case !complete && len(v) < len(version11) && version11[:len(v)] == string(v):
		return undecided, rl
	case !complete && len(v) < len(version10) && version10[:len(v)] == string(v):
		return undecided, rl
	default:
		return invalid, rl
	}
	if !complete {
		return undecided, rl
	}
	return valid, rl
}

// validTargetStart checks the first bytes of a request target: origin form
// "/...", "*" for OPTIONS, absolute form "http://..." and authority form for
// CONNECT.
func validTargetStart(method string, t []byte) bool {
	switch t[0] {
	case '/':
		return true
	case '*':
		return method == "OPTIONS"
	}
	if method == "CONNECT" {
		c := t[0]
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '['
	}
	const abs = "http"
	n := min(len(t), len(abs))
	return string(t[:n]) == abs[:n]
}

// checkStatusLine judges a status line "HTTP/1.x NNN reason" the same way,
// returning the status code when valid.
func checkStatusLine(line []byte, complete bool) (verdict, int, string) {
	const prefix = "HTTP/1."
	n := min(len(line), len(prefix))
	if string(line[:n]) != prefix[:n] {
		return invalid, 0, ""
	}
	if len(line) < len(prefix) {
		return undecided, 0, ""
	}
	if len(line) == len(prefix) {
		if complete {
			return invalid, 0, ""
		}
		return undecided, 0, ""
	}
	var ver string
	switch line[len(prefix)] {
	case '0':
		ver = version10
	case '1':
		ver = version11
	default:
		return invalid, 0, ""
	}
	rest := line[len(prefix)+1:]
	// " NNN" then end of line or " reason".
	want := 4
	for i := 0; i < len(rest) && i < want; i++ {
		c := rest[i]
		if i == 0 && c != ' ' || i > 0 && (c < '0' || c > '9') {
			return invalid, 0, ""
		}
	}
	if len(rest) < want {
		if complete {
			return invalid, 0, ""
		}
		return undecided, 0, ""
	}
	code := int(rest[1]-'0')*100 + int(rest[2]-'0')*10 + int(rest[3]-'0')
	if code < 100 || code > 599 {
		return invalid, 0, ""
	}
	if len(rest) > want {
		if rest[want] != ' ' {
			return invalid, 0, ""
		}
		for _, c := range rest[want+1:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return invalid, 0, ""
			}
		}
	}
	if !complete {
		return undecided, code, ver
	}
	return valid, code, ver
}

// startsMessage reports whether data can begin a message of the given kind:
// used to find the next message after framing was lost.
func startsMessage(data []byte, request bool) bool {
	line := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line = trimCR(data[:i])
		if request {
			v, _ := checkRequestLine(line, true)
			return v == valid
		}
		v, _, _ := checkStatusLine(line, true)
		return v == valid
	}
	if len(line) < 16 {
		return false
	}
	if request {
		v, _ := checkRequestLine(line, false)
		return v == undecided
	}
	v, _, _ := checkStatusLine(line, false)
	return v == undecided
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}
