package httpflow

import (
	"net"
	"strconv"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe/l7"
	"github.com/vigilproject/vigil/internal/schema"
)

// httpKind is registered here: the deriver is its producer.
var httpKind = schema.MustRegister(schema.Kind{
	Name:     KindHTTP,
	Producer: Name,
	From:     []event.Kind{l7.KindConnData},
	Doc: "Derived from conn_data: one event per HTTP/1.x request and its final response, seen from the server " +
		"or the client process, with method, path (query string stripped), route template, status, duration from " +
		"the first request byte to the last response byte, and sizes. Header values are never included unless " +
		"l7.http.headers lists them (credential headers never).",
	Columns: []schema.Column{
		{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "COMM", Field: "comm"},
		{Header: "SIDE", Field: "side"}, {Header: "METHOD", Field: "method"}, {Header: "PATH", Field: "path"},
		{Header: "STATUS", Field: "status"},
		{Header: "DUR_MS", Format: func(ev event.Event) string {
			return strconv.FormatFloat(float64(ev.(*Exchange).DurationNS)/1e6, 'f', 3, 64)
		}},
		{Header: "REQ_B", Field: "request_bytes"}, {Header: "RESP_B", Field: "response_bytes"},
		{Header: "REMOTE", Format: func(ev event.Event) string {
			e := ev.(*Exchange)
			return net.JoinHostPort(e.RemoteAddr, strconv.Itoa(int(e.RemotePort)))
		}},
		{Header: "SERVICE", Field: "service"},
	},
}, Exchange{})
