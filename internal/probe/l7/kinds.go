package l7

import (
	"encoding/base64"
	"strconv"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// KindConnData is one read or write on a tracked TCP connection.
const KindConnData event.Kind = "conn_data"

// ConnID names one connection for its whole life: the fd number may be
// reused by a later connection of the same process, the generation never.
type ConnID struct {
	PID        uint32 `json:"pid" doc:"process id owning the fd"`
	FD         uint32 `json:"fd" doc:"file descriptor of the socket"`
	Generation uint64 `json:"generation" doc:"unique per connection learnt since the probe started; a reused fd gets a new one"`
}

// ConnData is one successful read or write on a TCP socket the probe learnt
// from connect() (role client) or accept() (role server).
//
// Data holds the captured bytes for consumers in the agent (the protocol
// parsers); outside it (JSON, rules, `vigil trace`) they appear base64
// encoded in the data field, which is lossless for binary protocols.
//
// Privacy: the decoder redacts, before Data and DataB64 exist, the values of
// deny-listed HTTP headers (http.IsDenied's list: Authorization, Cookie,
// Set-Cookie, Proxy-Authorization, X-Api-Key, names containing token,
// secret, session, ...) in place, every value byte becoming '*', so lengths
// stay exact and no consumer ever sees them. It cannot be turned off.
type ConnData struct {
	event.Header
	Conn      ConnID `json:"conn" doc:"connection id"`
	Direction string `json:"direction" doc:"read (bytes received) or write (bytes sent)"`
	Role      string `json:"role" doc:"client (the process connected) or server (the process accepted)"`
	Family    string `json:"family" doc:"ipv4 or ipv6"`
	SAddr     string `json:"saddr" doc:"local address"`
	SPort     uint16 `json:"sport" doc:"local port"`
	DAddr     string `json:"daddr" doc:"remote address"`
	DPort     uint16 `json:"dport" doc:"remote port"`
	Syscall   string `json:"syscall" doc:"the syscall: read, readv, recvfrom, recvmsg, recvmmsg, write, writev, sendto, sendmsg, sendmmsg, or the TLS library call (SSL_read, SSL_write, crypto/tls.(*Conn).Read/Write)"`
	// Length is what the syscall returned: the bytes really transferred.
	Length    uint64 `json:"length" doc:"bytes the syscall transferred (its return value)"`
	Captured  uint32 `json:"captured" doc:"bytes captured from the start of the buffer (at most max_capture_bytes)"`
	Truncated bool   `json:"truncated" doc:"fewer bytes captured than transferred"`
	// Seeded connections were open before the probe started (found in
	// /proc); earlier bytes of their stream were not seen.
	Seeded bool `json:"seeded" doc:"the connection was open before the probe started (role guessed from listening ports; earlier bytes unseen)"`
	// TLS records carry the plaintext a TLS library read or wrote (uprobes);
	// they form a stream of their own, apart from the connection's syscall
	// records (the ciphertext of the handshake, before the library was seen).
	TLS string `json:"tls,omitempty" doc:"TLS library whose plaintext this is: openssl or go; empty for syscall data"`
	// DataB64 is Data in base64 (4096 captured bytes at most: 5464 characters).
	DataB64 string `json:"data" maxbytes:"5464" doc:"captured bytes, base64 encoded"`
	// Data are the captured bytes (not shown; DataB64 is their outside form).
	Data []byte `json:"-"`
}

var kinds = schema.Names(
	schema.MustRegister(schema.Kind{
		Name:     KindConnData,
		Producer: Name,
		Doc:      "A read or write on a TCP connection learnt from connect or accept: the connection, direction, true length and a bounded prefix of the bytes (base64), captured from the syscall tracepoints.",
		Columns: []schema.Column{
			{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "COMM", Field: "comm"},
			{Header: "FD", Format: func(ev event.Event) string { return strconv.FormatUint(uint64(ev.(*ConnData).Conn.FD), 10) }},
			{Header: "GEN", Format: func(ev event.Event) string { return strconv.FormatUint(ev.(*ConnData).Conn.Generation, 10) }},
			{Header: "ROLE", Field: "role"}, {Header: "DIR", Field: "direction"},
			{Header: "LADDR", Field: "saddr"}, {Header: "LPORT", Field: "sport"},
			{Header: "RADDR", Field: "daddr"}, {Header: "RPORT", Field: "dport"},
			{Header: "LEN", Field: "length"},
			{Header: "DATA", Format: func(ev event.Event) string { return Printable(ev.(*ConnData).Data, 64) }},
		},
	}, ConnData{}),
)

// Printable shows at most n bytes of b for a table: printable ASCII as is,
// everything else as '.'.
func Printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

func encodeData(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
