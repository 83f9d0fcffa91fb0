package httpflow

import (
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/event/derive"
	"github.com/vigilproject/vigil/internal/probe/l7"
)

// One keep-alive exchange (a request chunk and a response chunk, as the l7
// probe delivers them) through the deriver, and the RED metrics of its event.
func BenchmarkExchange(b *testing.B) {
	flow := New(DefaultConfig(), 100)
	var last *Exchange
	d := flow.newDeriver(derive.Env{Emit: func(ev event.Event) { last = ev.(*Exchange) }, Drop: func(string) {}})
	hdr := event.Header{Kind: l7.KindConnData, Time: time.Now(), Process: event.Process{PID: 1, Comm: "nginx"}}
	req := &l7.ConnData{Header: hdr, Conn: l7.ConnID{PID: 1, FD: 5, Generation: 1}, Direction: "read", Role: "server",
		Data: []byte("GET /users/42 HTTP/1.1\r\nHost: api\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
	req.Length = uint64(len(req.Data))
	resp := &l7.ConnData{Header: hdr, Conn: req.Conn, Direction: "write", Role: "server",
		Data: []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n")}
	resp.Length = uint64(len(resp.Data)) + 1024
	b.ReportAllocs()
	for b.Loop() {
		d.Consume(req)
		d.Consume(resp)
		flow.red.observe(last)
	}
}
