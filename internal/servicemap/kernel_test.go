package servicemap_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	_ "github.com/vigilproject/vigil/internal/probe/all"
	"github.com/vigilproject/vigil/internal/schema"
	"github.com/vigilproject/vigil/internal/servicemap"
	"github.com/vigilproject/vigil/internal/testutil"
)

// The test binary doubles as the server and client processes, copied under
// marker names so their service names (command names) are unique to a run.
func TestMain(m *testing.M) {
	switch os.Getenv("SERVICEMAP_ROLE") {
	case "tcp-server":
		tcpServer(os.Getenv("SERVICEMAP_ADDR"))
	case "tcp-client":
		tcpClient(os.Getenv("SERVICEMAP_ADDR"), os.Getenv("SERVICEMAP_REFUSED"))
	case "http-server":
		httpServer(os.Getenv("SERVICEMAP_ADDR"))
	case "http-client":
		httpClient(os.Getenv("SERVICEMAP_ADDR"))
	default:
		os.Exit(m.Run())
	}
	os.Exit(0)
}

const (
	tcpConns   = 5    // closed connections the client makes
	tcpReq     = 1000 // bytes the client sends on each
	tcpResp    = 5000 // bytes the server answers on each
	httpOK     = 7    // requests answered 200
	httpFailed = 3    // requests answered 500
	tcpRefused = 1    // failed connects
)

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
}

// tcpServer answers tcpConns connections (read everything, answer tcpResp
// bytes, close), then holds one more open until its client closes it.
func tcpServer(addr string) {
	ln, err := net.Listen("tcp", addr)
	fatal(err)
	fmt.Println("listening")
	for i := 0; i <= tcpConns; i++ {
		c, err := ln.Accept()
		fatal(err)
		_, err = io.Copy(io.Discard, c)
		fatal(err)
		if i < tcpConns {
			_, err = c.Write(make([]byte, tcpResp))
			fatal(err)
		}
		c.Close()
	}
}

// tcpClient makes tcpConns exchanges, one connect to a closed port, then
// opens one more connection and holds it until stdin closes.
func tcpClient(addr, refused string) {
	for range tcpConns {
		c, err := net.Dial("tcp", addr)
		fatal(err)
		_, err = c.Write(make([]byte, tcpReq))
		fatal(err)
		fatal(c.(*net.TCPConn).CloseWrite())
		n, err := io.Copy(io.Discard, c)
		fatal(err)
		if n != tcpResp {
			fatal(fmt.Errorf("read %d bytes, want %d", n, tcpResp))
		}
		c.Close()
	}
	if _, err := net.Dial("tcp", refused); err == nil {
		fatal(fmt.Errorf("connect to %s succeeded", refused))
	}
	c, err := net.Dial("tcp", addr)
	fatal(err)
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
	c.Close()
}

func httpServer(addr string) {
	ln, err := net.Listen("tcp", addr)
	fatal(err)
	fmt.Println("listening")
	fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(500)
		}
		_, _ = w.Write([]byte("hello\n"))
	})))
}

// httpClient sends httpOK + httpFailed requests on one keep-alive connection.
func httpClient(addr string) {
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	for i := range httpOK + httpFailed {
		path := "/ok/" + strconv.Itoa(i)
		if i >= httpOK {
			path = "/fail/" + strconv.Itoa(i)
		}
		resp, err := cl.Get("http://" + addr + path)
		fatal(err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// child starts the test binary, copied under a marker name, in a role.
func child(t *testing.T, prefix, role string, env ...string) (*exec.Cmd, string, io.WriteCloser, *strings.Builder) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := testutil.MarkerExecutable(t, self, prefix)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append(env, "SERVICEMAP_ROLE="+role)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The first line says the child is ready.
	buf := make([]byte, 64)
	if _, err := stdout.Read(buf); err != nil && role != "http-client" {
		t.Fatalf("%s: %v: %s", role, err, out)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, bin[strings.LastIndexByte(bin, '/')+1:], stdin, out
}

// startAgent runs the agent with the given probes and its HTTP server on a
// free port, and returns the service map's URL.
func startAgent(t *testing.T, probes ...string) string {
	t.Helper()
	testutil.RequireBPF(t)
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	cfg.Web.ListenAddress = addr
	a, err := agent.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), agent.Options{Probes: probes, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Main(func(ctx context.Context) error {
			close(ready)
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		testutil.SkipIfNotPermitted(t, err)
		t.Fatalf("agent stopped: %v", err)
	}
	t.Cleanup(func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return "http://" + addr + "/api/v1/servicemap"
}

func get(t *testing.T, url string) servicemap.Snapshot {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s servicemap.Snapshot
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitEdge polls the service map until cond holds for the edge client →
// server (nil edge: absent) or 10 s pass.
func waitEdge(t *testing.T, url, client, server, proto string, cond func(*servicemap.Edge) bool) (servicemap.Snapshot, *servicemap.Edge) {
	t.Helper()
	var s servicemap.Snapshot
	var e *servicemap.Edge
	testutil.WaitFor(10*time.Second, func() bool {
		s, e = get(t, url), nil
		for i := range s.Edges {
			if x := &s.Edges[i]; x.Client == client && x.Server == server && x.Protocol == proto {
				e = x
			}
		}
		return cond(e)
	})
	return s, e
}

func node(s servicemap.Snapshot, id string) (servicemap.Node, bool) {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return servicemap.Node{}, false
}

// Real loopback TCP between two processes, seen by the tcp probe: one edge
// from the client's service to the server's with the exact connection
// count, payload bytes, one latency per connect, the open connection while
// it is open, and the refused connect as an error towards the closed port.
func TestKernelTCPEdges(t *testing.T) {
	url := startAgent(t, "tcp")
	addr := fmt.Sprintf("127.%d.%d.%d:%d", 100+os.Getpid()%100, os.Getpid()/100%250+1, time.Now().Nanosecond()%250+1, 20000+os.Getpid()%20000)
	refused := testutil.FreeAddr(t)
	srv, srvName, _, srvErr := child(t, "sms", "tcp-server", "SERVICEMAP_ADDR="+addr)
	cli, cliName, cliIn, cliErr := child(t, "smc", "tcp-client", "SERVICEMAP_ADDR="+addr, "SERVICEMAP_REFUSED="+refused)
	client, server := "process/"+cliName, "process/"+srvName

	s, e := waitEdge(t, url+"?protocol=tcp", client, server, "tcp", func(e *servicemap.Edge) bool {
		return e != nil && e.Requests == tcpConns && e.OpenConnections == 1
	})
	if e == nil || e.Requests != tcpConns || e.OpenConnections != 1 {
		t.Fatalf("edge %s → %s: %+v; map %+v\nserver: %s\nclient: %s", client, server, e, s, srvErr, cliErr)
	}
	if e.Errors != 0 || e.RequestBytes != tcpConns*tcpReq || e.ResponseBytes != tcpConns*tcpResp || e.Latency.Count != tcpConns {
		t.Fatalf("edge %+v: want %d connections, 0 errors, %d bytes sent, %d received, %d connect latencies",
			e, tcpConns, tcpConns*tcpReq, tcpConns*tcpResp, tcpConns)
	}
	if e.Latency.P99Seconds <= 0 || e.Latency.P99Seconds > 0.1 {
		t.Fatalf("loopback connect p99 %v s", e.Latency.P99Seconds)
	}
	// Both ends were seen on this node: one edge, no external half.
	for _, x := range s.Edges {
		if (x.Server == server && x.Client != client) || (x.Client == client && x.Server != server && !strings.HasSuffix(x.Server, refused)) {
			t.Fatalf("extra edge %+v", x)
		}
	}
	sn, _ := node(s, server)
	cn, _ := node(s, client)
	if sn.Kind != "process" || len(sn.PIDs) != 1 || int(sn.PIDs[0]) != srv.Process.Pid || len(cn.PIDs) != 1 || int(cn.PIDs[0]) != cli.Process.Pid {
		t.Fatalf("nodes %+v / %+v, want pids %d / %d", sn, cn, srv.Process.Pid, cli.Process.Pid)
	}
	if _, f := waitEdge(t, url, client, "external/"+refused, "tcp", func(e *servicemap.Edge) bool { return e != nil }); f == nil || f.Requests != tcpRefused || f.Errors != tcpRefused {
		t.Fatalf("refused connect edge: %+v", f)
	}

	// Closing the held connection moves it from open to counted.
	cliIn.Close()
	_, e = waitEdge(t, url+"?protocol=tcp&window=1m", client, server, "tcp", func(e *servicemap.Edge) bool {
		return e != nil && e.Requests == tcpConns+1 && e.OpenConnections == 0
	})
	if e == nil || e.Requests != tcpConns+1 || e.OpenConnections != 0 || e.RequestBytes != tcpConns*tcpReq {
		t.Fatalf("after the last close: %+v", e)
	}
}

// HTTP between two processes, seen by the l7 probe and the http deriver:
// one http edge with the exact request and 5xx counts, and no tcp edge for
// the connection that carried it. Skips until the http kind is registered.
func TestKernelHTTPEdges(t *testing.T) {
	if !httpRegistered() {
		t.Skip("the http event kind is not registered in the schema (no http deriver in this build)")
	}
	url := startAgent(t, "tcp", "l7")
	addr := testutil.FreeAddr(t)
	_, srvName, _, srvErr := child(t, "shs", "http-server", "SERVICEMAP_ADDR="+addr)
	cli, cliName, _, cliErr := child(t, "shc", "http-client", "SERVICEMAP_ADDR="+addr)
	if err := cli.Wait(); err != nil {
		t.Fatalf("http client: %v: %s", err, cliErr)
	}
	client, server := "process/"+cliName, "process/"+srvName
	s, e := waitEdge(t, url, client, server, "http", func(e *servicemap.Edge) bool {
		return e != nil && e.Requests == httpOK+httpFailed
	})
	if e == nil || e.Requests != httpOK+httpFailed || e.Errors != httpFailed || e.Latency.Count != httpOK+httpFailed {
		t.Fatalf("http edge %s → %s: %+v; map %+v\nserver: %s", client, server, e, s, srvErr)
	}
	// Give unjoined events and the connection's close time to be counted,
	// then check each request was counted once, on this edge only, and
	// the connection did not become a tcp edge.
	time.Sleep(4 * time.Second)
	s = get(t, url)
	for _, x := range s.Edges {
		switch {
		case x.Client == client && x.Server == server && x.Protocol == "http":
			if x.Requests != httpOK+httpFailed {
				t.Fatalf("requests counted twice? %+v", x)
			}
		case x.Client == client || x.Server == server:
			if x.Requests > 0 {
				t.Fatalf("a second edge for the same traffic: %+v", x)
			}
		}
	}
	sn, _ := node(s, server)
	cn, _ := node(s, client)
	if len(cn.PIDs) != 1 || int(cn.PIDs[0]) != cli.Process.Pid || len(sn.PIDs) != 1 {
		t.Fatalf("nodes %+v / %+v", cn, sn)
	}
}

func httpRegistered() bool {
	_, ok := schema.Lookup(httpflow.KindHTTP)
	return ok
}
