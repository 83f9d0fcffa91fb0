package httpflow_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/testutil"
)

// serveGo runs a net/http server in this process on a loopback port.
func serveGo(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// ofPort keeps the events of connections to or from port.
func ofPort(evs []*httpflow.Exchange, port int) []*httpflow.Exchange {
	var out []*httpflow.Exchange
	for _, e := range evs {
		if int(e.LocalPort) == port || int(e.RemotePort) == port {
			out = append(out, e)
		}
	}
	return out
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}

// waitPort waits for exactly n events on port's connections.
func (r *run) waitPort(port, n int) (server, client []*httpflow.Exchange) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(ofPort(r.events(), port)) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	evs := ofPort(r.events(), port)
	if len(evs) != n {
		r.t.Fatalf("%d events on port %d, want %d:\n%s", len(evs), port, n, dump(evs))
	}
	return bySide(evs)
}

// Edge cases, with this process as server and client (raw sockets where
// the framing matters): exact exchange counts, nothing invented.
func TestEdgeCases(t *testing.T) {
	r := startAgent(t, true, os.Getpid())
	big := bytes.Repeat([]byte("0123456789abcdef"), (10<<20)/16)

	t.Run("10MB response then a small one on the same connection", func(t *testing.T) {
		addr := serveGo(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/big" {
				w.Write(big)
				return
			}
			io.WriteString(w, "small")
		}))
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for _, p := range []string{"/big", "/small"} {
			resp, err := c.Get("http://" + addr + p)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if p == "/big" && n != int64(len(big)) {
				t.Fatalf("read %d bytes", n)
			}
		}
		server, client := r.waitPort(portOf(t, addr), 4)
		for _, side := range [][]*httpflow.Exchange{server, client} {
			if len(side) != 2 || side[0].Path != "/big" || side[0].ResponseBody != int64(len(big)) || side[0].Status != 200 || side[0].Truncated ||
				side[1].Path != "/small" || side[1].ResponseBody != 5 || side[1].Truncated {
				t.Errorf("events:\n%s", dump(side))
			}
		}
	})

	t.Run("pipelined requests", func(t *testing.T) {
		addr := serveGo(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			io.WriteString(w, req.URL.Path)
		}))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var reqs string
		for i := 1; i <= 3; i++ {
			reqs += fmt.Sprintf("GET /p/%d HTTP/1.1\r\nHost: pipe\r\n\r\n", i)
		}
		if _, err := io.WriteString(c, reqs); err != nil { // one write, three requests
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		for i := 1; i <= 3; i++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		server, client := r.waitPort(portOf(t, addr), 6)
		for _, side := range [][]*httpflow.Exchange{server, client} {
			for i, e := range side {
				// Responses read at once past the 256 captured bytes: the
				// ones whose head was not captured are published truncated.
				if e.Path != fmt.Sprintf("/p/%d", i+1) || e.Status != 200 || e.Host != "pipe" || (!e.Truncated && e.ResponseBody != int64(len(e.Path))) {
					t.Errorf("event %d: %s", i, dump([]*httpflow.Exchange{e}))
				}
			}
		}
	})

	t.Run("request split across many writes", func(t *testing.T) {
		addr := serveGo(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			n, _ := io.Copy(io.Discard, req.Body)
			fmt.Fprint(w, n)
		}))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := "POST /split/upload HTTP/1.1\r\nHost: split\r\nContent-Length: 100\r\nX-Padding: " + strings.Repeat("p", 200) + "\r\n\r\n" + strings.Repeat("d", 100)
		for i := 0; i < len(req); i += 7 {
			if _, err := io.WriteString(c, req[i:min(i+7, len(req))]); err != nil {
				t.Fatal(err)
			}
			if i%70 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "100" {
			t.Fatalf("server read %q body bytes", body)
		}
		server, client := r.waitPort(portOf(t, addr), 2)
		for _, e := range append(server, client...) {
			if e.Method != "POST" || e.Path != "/split/upload" || e.RequestBytes != int64(len(req)) || e.RequestBody != 100 || e.Status != 200 {
				t.Errorf("%s", dump([]*httpflow.Exchange{e}))
			}
		}
	})

	t.Run("fd reused after a close-delimited response", func(t *testing.T) {
		// An HTTP/1.0 server whose responses end at the close: the
		// exchange completes when the fd is reused (or idles out), and
		// the next connection on the same fd starts clean.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err == nil {
					fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody of %s", req.URL.Path)
				}
				c.Close()
			}
		}()
		for i := 0; i < 2; i++ {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /reuse/%d HTTP/1.0\r\n\r\n", i)
			b, _ := io.ReadAll(c)
			c.Close()
			if !strings.HasSuffix(string(b), fmt.Sprintf("body of /reuse/%d", i)) {
				t.Fatalf("response %q", b)
			}
		}
		// Anything still open closes at the 2 s idle timeout.
		server, client := r.waitPort(portOf(t, ln.Addr().String()), 4)
		for _, side := range [][]*httpflow.Exchange{server, client} {
			for i, e := range side {
				if e.Path != fmt.Sprintf("/reuse/%d", i) || e.Status != 200 || e.ResponseBody != int64(len("body of /reuse/0")) ||
					e.Version != "HTTP/1.0" || time.Duration(e.DurationNS) > time.Second {
					t.Errorf("%s event %d: %s", e.Side, i, dump([]*httpflow.Exchange{e}))
				}
			}
			if side[0].Conn.Generation == side[1].Conn.Generation {
				t.Errorf("two connections with one generation: %s", dump(side))
			}
		}
	})

	t.Run("binary protocol", func(t *testing.T) {
		before := r.metrics().Value("vigil_http_streams_not_http_total", nil)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { // echo with read and write (io.Copy would splice)
					defer c.Close()
					b := make([]byte, 4096)
					for {
						n, err := c.Read(b)
						if err != nil {
							return
						}
						c.Write(b[:n])
					}
				}()
			}
		}()
		// Random bytes, and messages that start like a request line but
		// go binary.
		msgs := [][]byte{[]byte("GET\x00\x01\x02\x03binary\r\n\r\n"), []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")}
		for i := 0; i < 8; i++ {
			b := make([]byte, 512)
			rand.Read(b)
			msgs = append(msgs, b)
		}
		for _, m := range msgs {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 3; k++ {
				c.Write(m)
				io.ReadFull(c, make([]byte, len(m)))
			}
			c.Close()
		}
		time.Sleep(time.Second)
		if evs := ofPort(r.events(), portOf(t, ln.Addr().String())); len(evs) != 0 {
			t.Fatalf("http events from a binary protocol:\n%s", dump(evs))
		}
		// Each connection is two streams (both ends in this process).
		if got := r.metrics().Value("vigil_http_streams_not_http_total", nil) - before; got < float64(2*len(msgs)) {
			t.Errorf("%v streams rejected, want %d", got, 2*len(msgs))
		}
	})
	r.noLoss()
}

// Debian's redis-server answering redis-cli and redis-benchmark (RESP on
// loopback): no http event, every stream rejected by detection.
func TestRedisIsNotHTTP(t *testing.T) {
	redis := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	bench := lookPath(t, "redis-benchmark")
	addr := testutil.FreeAddr(t)
	port := fmt.Sprint(portOf(t, addr))
	srv := exec.Command(redis, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	startProcess(t, srv)
	listenAddr(t, addr)
	r := startAgent(t, false, srv.Process.Pid)
	for _, args := range [][]string{{"SET", "GET", "x"}, {"GET", "GET"}, {"SET", "k", "HTTP/1.1 200 OK"}, {"GET", "k"}} {
		if out, err := exec.Command(cli, append([]string{"-p", port}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("redis-cli %v: %v %s", args, err, out)
		}
	}
	if out, err := exec.Command(bench, "-p", port, "-n", "2000", "-c", "4", "-q", "-t", "set,get").CombinedOutput(); err != nil {
		t.Fatalf("redis-benchmark: %v %s", err, out)
	}
	time.Sleep(time.Second)
	if evs := r.events(); len(evs) != 0 {
		t.Fatalf("http events from redis:\n%s", dump(evs))
	}
	// 4 redis-cli connections and redis-benchmark's (at least its 4 clients).
	if got := r.metrics().Value("vigil_http_streams_not_http_total", nil); got < 8 {
		t.Errorf("%v redis streams rejected, want at least 8", got)
	}
	r.noLoss()
}
