package httpflow

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/event/derive"
	"github.com/vigilproject/vigil/internal/probe/l7"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// feeder builds conn_data chunks the way the l7 probe does: at most capture
// bytes of each call, the true length always.
type feeder struct {
	d       *deriver
	out     []*Exchange
	drops   map[string]int
	capture int
}

func newFeeder(cfg Config) *feeder {
	f := &feeder{drops: map[string]int{}, capture: 256}
	flow := New(cfg, 100)
	f.d = flow.newDeriver(derive.Env{
		Emit: func(ev event.Event) { f.out = append(f.out, ev.(*Exchange)) },
		Drop: func(r string) { f.drops[r]++ },
	})
	return f
}

func (f *feeder) chunk(pid, fd uint32, gen uint64, role, dir string, at time.Duration, data string) {
	b := []byte(data)
	if len(b) > f.capture {
		b = b[:f.capture]
	}
	cd := &l7.ConnData{Header: event.Header{Kind: l7.KindConnData, Time: t0.Add(at),
		Process: event.Process{PID: pid, Comm: "srv"}},
		Conn: l7.ConnID{PID: pid, FD: fd, Generation: gen}, Direction: dir, Role: role,
		SAddr: "127.0.0.1", SPort: 80, DAddr: "127.0.0.1", DPort: 40000,
		Length: uint64(len(data)), Captured: uint32(len(b)), Truncated: len(b) < len(data), Data: b}
	f.d.Consume(cd)
}

const resp = "HTTP/1.1 200 OK\r\nDate: Wed, 02 Dec 2026 15:22:00 GMT\r\nContent-Length: 4\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody"

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
}

// Three pipelined responses read at once, captured only up to 256 bytes:
// the third one's status line is cut by the capture (between CR and LF);
// it is still paired with its request and published, marked truncated,
// when the stream closes.
func TestPipelinedResponsesPastCapture(t *testing.T) {
	f := newFeeder(DefaultConfig())
	var reqs string
	for i := 1; i <= 3; i++ {
		reqs += fmt.Sprintf("GET /p/%d HTTP/1.1\r\nHost: pipe\r\n\r\n", i)
	}
	f.chunk(1, 5, 1, "client", "write", 0, reqs)
	f.chunk(1, 5, 1, "client", "read", time.Millisecond, strings.Repeat(resp, 3))
	if len(f.out) != 2 {
		t.Fatalf("%d exchanges before close, want 2", len(f.out))
	}
	f.d.Tick(time.Now().Add(time.Hour))
	if len(f.out) != 3 || f.out[2].Path != "/p/3" || f.out[2].Status != 200 || !f.out[2].Truncated || f.out[0].Truncated {
		t.Fatalf("exchanges %+v", f.out)
	}
	if f.d.f.closed[closedIdle].Load() != 1 || len(f.d.streams) != 0 {
		t.Fatalf("idle close not counted, %d streams left", len(f.d.streams))
	}
}

// A new generation on the same (pid, fd) closes the old stream first: its
// close-delimited response completes, and the new connection starts clean.
func TestReusedFDClosesOldStream(t *testing.T) {
	f := newFeeder(DefaultConfig())
	f.chunk(1, 5, 1, "server", "read", 0, "GET /a HTTP/1.0\r\n\r\n")
	f.chunk(1, 5, 1, "server", "write", time.Millisecond, "HTTP/1.0 200 OK\r\n\r\nuntil close")
	f.chunk(1, 5, 2, "server", "read", 5*time.Second, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	f.chunk(1, 5, 2, "server", "write", 5*time.Second+time.Millisecond, "HTTP/1.1 204 No Content\r\n\r\n")
	if len(f.out) != 2 || f.out[0].Path != "/a" || f.out[0].ResponseBody != 11 || f.out[0].DurationNS != 1e6 ||
		f.out[1].Path != "/b" || f.out[1].Status != 204 || f.out[1].Conn.Generation != 2 || f.out[1].DurationNS != 1e6 {
		t.Fatalf("exchanges %+v", f.out)
	}
	if f.d.f.closed[closedReused].Load() != 1 {
		t.Fatal("reuse close not counted")
	}
}

// A stream that starts with a response (its request came before the agent
// started) skips to the first request instead of being judged not HTTP.
func TestSkipUntilFirstRequest(t *testing.T) {
	f := newFeeder(DefaultConfig())
	f.chunk(1, 5, 1, "server", "write", 0, resp)
	f.chunk(1, 5, 1, "server", "read", time.Millisecond, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	f.chunk(1, 5, 1, "server", "write", 2*time.Millisecond, resp)
	if len(f.out) != 1 || f.out[0].Path != "/c" || f.out[0].Side != "server" || f.d.f.skipped.Load() != 1 {
		t.Fatalf("exchanges %+v, skipped %d", f.out, f.d.f.skipped.Load())
	}
}

// The stream table is bounded: the least recently used stream is closed
// (flushed) and counted; binary streams cost a table slot and nothing else.
func TestStreamTableBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxStreams = 16
	f := newFeeder(cfg)
	for fd := uint32(0); fd < 40; fd++ {
		f.chunk(1, fd, uint64(fd)+1, "client", "write", time.Duration(fd)*time.Millisecond, "\x00\x01binary")
	}
	if len(f.d.streams) != 16 || f.d.live.Load() != 16 || f.drops["streams_full"] != 24 || f.d.f.closed[closedEvicted].Load() != 24 {
		t.Fatalf("%d streams (%d live), drops %v", len(f.d.streams), f.d.live.Load(), f.drops)
	}
	if f.d.f.stats.NotHTTP.Load() != 40 || len(f.out) != 0 {
		t.Fatalf("not http %d, out %d", f.d.f.stats.NotHTTP.Load(), len(f.out))
	}
	// The survivors are the 16 most recent.
	for fd := uint32(24); fd < 40; fd++ {
		if _, ok := f.d.streams[streamKey{1, fd, ""}]; !ok {
			t.Fatalf("fd %d was evicted before older ones", fd)
		}
	}
}

// Header values leave the deriver only when listed, credential ones never;
// the path keeps no query string.
func TestHeadersAllowListed(t *testing.T) {
	req := "GET /q?token=abc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-XYZ\r\nUser-Agent: ua/1\r\nX-Other: o\r\n\r\n"
	f := newFeeder(DefaultConfig())
	f.chunk(1, 5, 1, "client", "write", 0, req)
	f.chunk(1, 5, 1, "client", "read", time.Millisecond, resp)
	if len(f.out) != 1 || f.out[0].RequestHeaders != nil || f.out[0].Path != "/q" {
		t.Fatalf("default: %+v", f.out)
	}
	cfg := DefaultConfig()
	cfg.Headers = []string{"User-Agent", "content-type"}
	f = newFeeder(cfg)
	f.chunk(1, 5, 1, "client", "write", 0, req)
	f.chunk(1, 5, 1, "client", "read", time.Millisecond, resp)
	if len(f.out) != 1 || len(f.out[0].RequestHeaders) != 1 || f.out[0].RequestHeaders["user-agent"] != "ua/1" ||
		f.out[0].ResponseHeaders["content-type"] != "text/plain; charset=utf-8" {
		t.Fatalf("allow-listed: %+v %+v", f.out[0].RequestHeaders, f.out[0].ResponseHeaders)
	}
	cfg.Headers = []string{"authorization"}
	if errs := cfg.Validate(); len(errs) != 1 || errs[0].Path != "headers" {
		t.Fatalf("authorization accepted: %v", errs)
	}
}

// Idleness is measured on the deriver's clock, not on event times: a
// deriver running behind its queue (events minutes old) keeps the stream
// until it has really not been fed for idle_timeout.
func TestIdleOnDeriverClock(t *testing.T) {
	f := newFeeder(DefaultConfig())
	now := time.Now()
	f.d.Tick(now)
	f.chunk(1, 5, 1, "server", "read", 0, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") // t0: months ago
	f.d.Tick(now.Add(30 * time.Second))
	f.chunk(1, 5, 1, "server", "write", 40*time.Second, resp)
	if len(f.out) != 1 || f.out[0].DurationNS != 40e9 || f.d.f.closed[closedIdle].Load() != 0 {
		t.Fatalf("exchanges %+v, idle closes %d", f.out, f.d.f.closed[closedIdle].Load())
	}
	f.d.Tick(now.Add(89 * time.Second)) // fed at the 30 s tick: 59 s idle
	if len(f.d.streams) != 1 {
		t.Fatal("closed before idle_timeout")
	}
	f.d.Tick(now.Add(91 * time.Second))
	if len(f.d.streams) != 0 || f.d.f.closed[closedIdle].Load() != 1 {
		t.Fatal("not closed after idle_timeout")
	}
}
