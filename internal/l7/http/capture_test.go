package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a TCP proxy that keeps every read of both directions, in the
// order they happened, as the server process would have seen them: bytes
// from the client are the server's reads, bytes from the upstream its
// writes.
type recorder struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    [][]ev
	wg       sync.WaitGroup
}

func newRecorder(t *testing.T, upstream string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, upstream: upstream}
	go r.serve()
	t.Cleanup(func() { ln.Close() })
	return r
}

func (r *recorder) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, nil)
		idx := len(r.conns) - 1
		r.mu.Unlock()
		r.wg.Add(1)
		go r.proxy(c, idx)
	}
}

func (r *recorder) proxy(client net.Conn, idx int) {
	defer r.wg.Done()
	up, err := net.Dial("tcp", r.upstream)
	if err != nil {
		client.Close()
		return
	}
	var done sync.WaitGroup
	pipe := func(dst, src net.Conn, dir Direction) {
		defer done.Done()
		buf := make([]byte, 16<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				r.mu.Lock()
				r.conns[idx] = append(r.conns[idx], ev{dir: dir, data: string(buf[:n]), ts: time.Now().UnixNano()})
				r.mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}
	done.Add(2)
	go pipe(up, client, Read)
	go pipe(client, up, Write)
	done.Wait()
	client.Close()
	up.Close()
	r.mu.Lock()
	r.conns[idx] = append(r.conns[idx], ev{close: true, ts: time.Now().UnixNano()})
	r.mu.Unlock()
}

// recorded waits for every proxied connection to end and returns them.
func (r *recorder) recorded() [][]ev {
	r.ln.Close()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// feedRecorded parses recorded connections; with capture > 0 only that
// prefix of each read is given, as the kernel probe would.
func feedRecorded(conns [][]ev, capture int, st *Stats) []Exchange {
	var out []Exchange
	for _, evs := range conns {
		c := NewConn(Config{}, st)
		for _, e := range evs {
			if e.close {
				out = append(out, c.Close(e.ts)...)
				continue
			}
			data := []byte(e.data)
			if capture > 0 && len(data) > capture {
				data = data[:capture]
			}
			out = append(out, c.Feed(e.dir, data, len(e.data), e.ts)...)
		}
	}
	return out
}

// seen is what the client observed for one request.
type seen struct {
	method, path string
	status       int
	reqBody      int64
	respBody     int64
	start, end   int64 // client clock around the request, for duration bounds
}

func doRequests(t *testing.T, base string, reqs []seen) []seen {
	t.Helper()
	cl := &nethttp.Client{
		Transport:     &nethttp.Transport{MaxIdleConnsPerHost: 1, ExpectContinueTimeout: time.Second, DisableCompression: true},
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse },
	}
	defer cl.CloseIdleConnections()
	var got []seen
	for _, q := range reqs {
		var body io.Reader
		if q.reqBody > 0 {
			body = bytes.NewReader(bytes.Repeat([]byte("b"), int(q.reqBody)))
		}
		req, err := nethttp.NewRequest(q.method, base+q.path+"?secret=1", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer secret")
		if q.reqBody > 0 {
			req.Header.Set("Expect", "100-continue")
		}
		start := time.Now().UnixNano()
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, seen{q.method, q.path, resp.StatusCode, q.reqBody, n, start, time.Now().UnixNano()})
	}
	return got
}

func compareSeen(t *testing.T, name string, client []seen, ex []Exchange, role Role) {
	t.Helper()
	if len(ex) != len(client) {
		t.Fatalf("%s: %d exchanges, the client made %d requests: %+v", name, len(ex), len(client), ex)
	}
	for i, c := range client {
		e := ex[i]
		if e.Role != role || e.Method != c.method || e.Path != c.path || e.Status != c.status ||
			e.RequestBodySize != c.reqBody || e.ResponseBodySize != c.respBody || e.Truncated || e.End < e.Start ||
			e.Start < c.start || e.End > c.end {
			t.Fatalf("%s: exchange %d = %+v, client saw %+v", name, i, e, c)
		}
		if strings.Contains(fmt.Sprintf("%+v", e), "secret") {
			t.Fatalf("%s: secret leaked", name)
		}
	}
}

// A Go net/http server behind the recording proxy: keep-alive, chunked,
// 100-continue, HEAD, 204, 301, 404, 500 and a 10 MB body, parsed from the
// full bytes and from 256-byte captured prefixes.
func TestRecordedGoServer(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 10<<20)
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/ok", func(w nethttp.ResponseWriter, r *nethttp.Request) { w.Write(bytes.Repeat([]byte("k"), 1024)) })
	mux.HandleFunc("/chunked", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Write([]byte("part one;"))
		w.(nethttp.Flusher).Flush()
		time.Sleep(2 * time.Millisecond)
		w.Write([]byte("part two"))
	})
	mux.HandleFunc("/upload", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	})
	mux.HandleFunc("/empty", func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/moved", func(w nethttp.ResponseWriter, r *nethttp.Request) { nethttp.Redirect(w, r, "/ok", 301) })
	mux.HandleFunc("/fail", func(w nethttp.ResponseWriter, r *nethttp.Request) { nethttp.Error(w, "boom", 500) })
	mux.HandleFunc("/big", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rec := newRecorder(t, srv.Listener.Addr().String())
	reqs := []seen{
		{method: "GET", path: "/ok"}, {method: "GET", path: "/chunked"}, {method: "POST", path: "/upload", reqBody: 5000},
		{method: "HEAD", path: "/ok"}, {method: "GET", path: "/empty"}, {method: "GET", path: "/moved"},
		{method: "GET", path: "/nothing"}, {method: "GET", path: "/fail"}, {method: "GET", path: "/big"}, {method: "GET", path: "/ok"},
	}
	client := doRequests(t, "http://"+rec.ln.Addr().String(), reqs)
	conns := rec.recorded()
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1 kept alive", len(conns))
	}
	for _, capture := range []int{0, 256} {
		st := new(Stats)
		ex := feedRecorded(conns, capture, st)
		compareSeen(t, fmt.Sprintf("capture %d", capture), client, ex, RoleServer)
		if s := st.Snapshot(); s.LostSync != 0 || s.OrphanResponses != 0 || s.Unanswered != 0 || s.NotHTTP != 0 {
			t.Fatalf("capture %d: stats %+v", capture, s)
		}
		if ex[8].ResponseSize <= 10<<20 || ex[8].ResponseSize > 10<<20+200 {
			t.Fatalf("capture %d: 10 MB response size %d", capture, ex[8].ResponseSize)
		}
	}
	// the same bytes seen from the client process: directions swap
	for _, evs := range conns {
		for i := range evs {
			evs[i].dir ^= 1
		}
	}
	compareSeen(t, "client side", client, feedRecorded(conns, 256, new(Stats)), RoleClient)
}

// Python's http.server (HTTP/1.1 keep-alive) behind the recording proxy.
func TestRecordedPythonServer(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "small.txt"), bytes.Repeat([]byte("s"), 1000), 0o644)
	os.WriteFile(filepath.Join(dir, "large.bin"), bytes.Repeat([]byte("l"), 300000), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	script := fmt.Sprintf(`import http.server, functools
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=%q)
h.func.protocol_version = "HTTP/1.1"
h.func.log_message = lambda *a: None
http.server.ThreadingHTTPServer(("127.0.0.1", %d), h).serve_forever()`, dir, port)
	cmd := exec.CommandContext(ctx, py, "-c", script)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal("python http.server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec := newRecorder(t, addr)
	reqs := []seen{
		{method: "GET", path: "/small.txt"}, {method: "GET", path: "/large.bin"}, {method: "HEAD", path: "/large.bin"},
		{method: "GET", path: "/missing"}, {method: "GET", path: "/"}, {method: "GET", path: "/small.txt"},
	}
	client := doRequests(t, "http://"+rec.ln.Addr().String(), reqs)
	conns := rec.recorded()
	for _, capture := range []int{0, 256} {
		st := new(Stats)
		ex := feedRecorded(conns, capture, st)
		compareSeen(t, fmt.Sprintf("capture %d", capture), client, ex, RoleServer)
		if s := st.Snapshot(); s.LostSync != 0 || s.OrphanResponses != 0 || s.NotHTTP != 0 {
			t.Fatalf("capture %d: stats %+v", capture, s)
		}
	}
}
