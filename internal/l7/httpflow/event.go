// Package httpflow turns the connection streams of the l7 probe (conn_data
// events) into HTTP exchanges: it runs the HTTP/1.x parser per connection,
// publishes one `http` event per request/response pair and exports the RED
// metrics (OpenTelemetry semantic-convention names in Prometheus form).
package httpflow

import (
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe/l7"
)

// KindHTTP is one HTTP request and its final response, seen from one side.
const KindHTTP event.Kind = "http"

// Exchange is one HTTP/1.x request and its final response, as the process
// in the header saw it: as the server (it accepted the connection) or as
// the client (it connected). A request between two watched processes on
// this node gives two events, one per side.
type Exchange struct {
	event.Header
	Side string `json:"side" doc:"server (the process answered) or client (the process asked)"`
	// Conn is the connection the exchange ran on.
	Conn l7.ConnID `json:"conn" doc:"connection id (pid, fd, generation)"`
	// TLS is the library whose plaintext was parsed; empty for plain TCP.
	TLS     string `json:"tls,omitempty" doc:"TLS library whose plaintext was parsed (openssl, go); empty for plain HTTP"`
	Method  string `json:"method" doc:"request method (GET, POST, ...)"`
	Path    string `json:"path" doc:"request path, query string and fragment stripped"`
	Route   string `json:"route" doc:"bounded route template of the path (numeric, uuid and hex segments collapsed)"`
	Version string `json:"version" doc:"HTTP/1.0 or HTTP/1.1"`
	Host    string `json:"host" doc:"Host header of the request"`
	Status  int    `json:"status" doc:"final response status code"`
	// DurationNS runs from the first request byte to the last response byte.
	DurationNS uint64 `json:"duration_ns" doc:"nanoseconds from the first request byte to the last response byte"`
	// Sizes are wire bytes (start line, headers, body).
	RequestBytes  int64 `json:"request_bytes" doc:"request size on the wire (start line, headers, body)"`
	ResponseBytes int64 `json:"response_bytes" doc:"response size on the wire"`
	RequestBody   int64 `json:"request_body_bytes" doc:"request body size"`
	ResponseBody  int64 `json:"response_body_bytes" doc:"response body size"`
	// Local and remote ends of the connection as this process sees them.
	LocalAddr  string `json:"local_addr" doc:"local address of the connection"`
	LocalPort  uint16 `json:"local_port" doc:"local port"`
	RemoteAddr string `json:"remote_addr" doc:"remote address of the connection"`
	RemotePort uint16 `json:"remote_port" doc:"remote port"`
	// Service is this process's service identity (container/workload name,
	// systemd unit, or process name), the node of the service map.
	Service string `json:"service" doc:"service identity of the process: container name, systemd unit or process name"`
	// Truncated: part of the exchange was not captured or parsed; sizes may
	// be short.
	Truncated bool `json:"truncated" doc:"part of the exchange was not captured or parsed (sizes may be short)"`
	// Seeded: the connection was open before capture started.
	Seeded bool `json:"seeded" doc:"the connection was open before the agent started"`
	// RequestHeaders and ResponseHeaders hold only the headers named in
	// l7.http.headers (lower-case names); credential headers never.
	RequestHeaders  map[string]string `json:"request_headers,omitempty" doc:"request headers listed in l7.http.headers (lower-case names; empty by default, credential headers never)"`
	ResponseHeaders map[string]string `json:"response_headers,omitempty" doc:"response headers listed in l7.http.headers (lower-case names)"`
}
