package httpflow_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/gobin/gobintest"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/servicemap"
	"github.com/vigilproject/vigil/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gobintest.Cleanup()
	os.Exit(code)
}

// nginx over HTTPS (its libssl): the same checks as over HTTP, every event
// with tls "openssl".
func TestNginxHTTPSREDMatchesAccessLog(t *testing.T) {
	cert, key := testutil.SelfSignedCert(t)
	nginxRED(t, cert, key)
}

// goTLSProgram is an HTTPS server ("serve ADDR CERT KEY": prints
// "listening") and client ("get BASE CERT": waits for a line on stdin, so
// the test can see its executable probed first, then makes goTLSWant's
// requests on one keep-alive connection and prints the statuses). HTTP/2
// is off on both sides: the deriver parses HTTP/1.x.
const goTLSProgram = `package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	switch os.Args[1] {
	case "serve":
		mux := http.NewServeMux()
		mux.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			if r.Method == "POST" {
				w.WriteHeader(http.StatusCreated)
			}
			fmt.Fprintln(w, n)
		})
		mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			panic(err)
		}
		fmt.Println("listening")
		srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0), TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		panic(srv.ServeTLS(ln, os.Args[3], os.Args[4]))
	case "get":
		bufio.NewReader(os.Stdin).ReadString('\n')
		pemBytes, err := os.ReadFile(os.Args[3])
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
		base := os.Args[2]
		do := func(method, path string, body io.Reader) {
			req, _ := http.NewRequest(method, base+path, body)
			resp, err := c.Do(req)
			if err != nil {
				panic(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fmt.Println(resp.StatusCode)
		}
		do("GET", "/items/42?x=1", nil)
		do("POST", "/items/7", strings.NewReader(strings.Repeat("b", 1000)))
		do("GET", "/fail", nil)
		do("GET", "/missing", nil)
	}
}
`

// goTLSWant is what the client asks, in order.
var goTLSWant = []struct {
	method, path, route string
	status              int
	reqBody             int64
}{
	{"GET", "/items/42", "/items/{id}", 200, 0},
	{"POST", "/items/7", "/items/{id}", 201, 1000},
	{"GET", "/fail", "/fail", 500, 0},
	{"GET", "/missing", "/missing", 404, 0},
}

// goTLSPair is a started server and a client waiting for its go line.
type goTLSPair struct {
	addr        string
	srv, cli    *exec.Cmd
	cliIn       io.WriteCloser
	cliOut      strings.Builder
	srvPID, pid int
}

// startGoTLSPair starts the server and the client of goTLSProgram (the
// executables may differ) against each other.
func startGoTLSPair(t *testing.T, srvBin, cliBin, cert, key string) *goTLSPair {
	t.Helper()
	p := &goTLSPair{addr: testutil.FreeAddr(t)}
	p.srv = exec.Command(srvBin, "serve", p.addr, cert, key)
	startProcess(t, p.srv)
	listenAddr(t, p.addr)
	p.cli = exec.Command(cliBin, "get", "https://"+p.addr, cert)
	var err error
	if p.cliIn, err = p.cli.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	p.cli.Stdout = &p.cliOut
	startProcess(t, p.cli)
	return p
}

// release lets the client make its requests and waits for it.
func (p *goTLSPair) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.cliIn, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.cli.Wait(); err != nil || strings.Join(strings.Fields(p.cliOut.String()), " ") != "200 201 500 404" {
		t.Fatalf("client: %v %q", err, p.cliOut.String())
	}
}

// goAttached is how many executables the Go TLS probe of the agent with
// this registry attached to so far.
func goAttached(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Value("vigil_l7_go_tls_binaries_total", map[string]string{"result": "attached"})
}

// waitGoAttached waits until the Go TLS probe attached to n more
// executables than before (the periodic /proc scan finds new processes),
// then one scan longer: another Go program of the machine may have been
// one of those counted.
func waitGoAttached(t *testing.T, reg prometheus.Gatherer, before float64, n int) {
	t.Helper()
	if !testutil.WaitFor(30*time.Second, func() bool { return goAttached(t, reg) >= before+float64(n) }) {
		t.Fatalf("the Go TLS probe attached to %v new executables, want %d", goAttached(t, reg)-before, n)
	}
	time.Sleep(2500 * time.Millisecond) // tls.rescan_interval (2 s) and some
}

// A Go net/http HTTPS server and client (crypto/tls), built by the current
// Go and go1.22.12, each also stripped: both sides' events carry the
// method, status, route and tls "go"; the client-side metric names the
// server's address and port.
func TestGoHTTPS(t *testing.T) {
	testutil.RequireBPF(t)
	cert, key := testutil.SelfSignedCert(t)
	bins := make([]string, len(gobintest.Variants))
	for i, v := range gobintest.Variants {
		bins[i] = gobintest.Build(t, goTLSProgram, v)
	}
	r := startAgent(t, false)
	for i, v := range gobintest.Variants {
		t.Run(v.String(), func(t *testing.T) {
			parent := r.t
			r.t = t // the run's helpers fail this subtest
			defer func() { r.t = parent }()
			attached := goAttached(t, r.a.Registry)
			p := startGoTLSPair(t, bins[i], bins[i], cert, key)
			// One executable per variant, probed once for both processes.
			waitGoAttached(t, r.a.Registry, attached, 1)
			p.release(t)
			server := r.waitEvents(len(goTLSWant), p.srv.Process.Pid)
			client := r.waitEvents(len(goTLSWant), p.cli.Process.Pid)
			port := uint16(server[0].LocalPort)
			for _, side := range []struct {
				name string
				evs  []*httpflow.Exchange
			}{{"server", server}, {"client", client}} {
				for j, w := range goTLSWant {
					e := side.evs[j]
					if e.Side != side.name || e.TLS != "go" || e.Method != w.method || e.Path != w.path || e.Route != w.route ||
						e.Status != w.status || e.RequestBody != w.reqBody || e.Version != "HTTP/1.1" || e.Host != p.addr ||
						e.Truncated || e.DurationNS == 0 || e.Conn.Generation != side.evs[0].Conn.Generation {
						t.Errorf("%s event %d: %+v\nwant %+v", side.name, j, e, w)
					}
				}
			}
			if client[0].RemotePort != port || client[0].LocalPort != server[0].RemotePort {
				t.Errorf("client %s:%d → %s:%d, server %s:%d ← %s:%d", client[0].LocalAddr, client[0].LocalPort, client[0].RemoteAddr,
					client[0].RemotePort, server[0].LocalAddr, server[0].LocalPort, server[0].RemoteAddr, server[0].RemotePort)
			}
			// The client-side RED metric of this pair, labelled with the server.
			m := r.metrics()
			for _, w := range goTLSWant {
				labels := map[string]string{"http_request_method": w.method, "http_route": w.route,
					"http_response_status_code": strconv.Itoa(w.status), "server_address": "127.0.0.1", "server_port": strconv.Itoa(int(port))}
				if got := m.Value("http_client_request_duration_seconds", labels); got != 1 {
					t.Errorf("client requests %v: %v, want 1: %v", labels, got, m.Series("http_client_request_duration_seconds"))
				}
			}
			r.noLoss()
		})
	}
}

// pyTLSServer serves http.server over ssl on 127.0.0.1:PORT (CERT, KEY) and
// prints "ready".
const pyTLSServer = `import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        body = b"python page\n" * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
`

// pyTLSClient asks BASE (trusting CERT) for a page and a missing one.
const pyTLSClient = `import ssl, sys, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile=sys.argv[2])
r = urllib.request.urlopen(sys.argv[1] + "/page?v=1", context=ctx)
r.read()
print(r.status)
try:
    urllib.request.urlopen(sys.argv[1] + "/missing", context=ctx)
except urllib.error.HTTPError as e:
    e.read()
    print(e.code)
`

// Python's http.server wrapped in ssl and a urllib client, both on libssl
// through _ssl: events of both sides with tls "openssl".
func TestPythonHTTPS(t *testing.T) {
	py := lookPath(t, "/usr/bin/python3", "python3")
	cert, key := testutil.SelfSignedCert(t)
	addr := testutil.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	srv := exec.Command(py, "-c", pyTLSServer, port, cert, key)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startProcess(t, srv)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("python server: %q, %v", line, err)
	}
	r := startAgent(t, false)
	cmd := exec.Command(py, "-c", pyTLSClient, "https://localhost:"+port, cert)
	if out, err := cmd.Output(); err != nil || strings.Join(strings.Fields(string(out)), " ") != "200 404" {
		t.Fatalf("client: %v %q", err, out)
	}
	server := r.waitEvents(2, srv.Process.Pid)
	client := r.waitEvents(2, cmd.Process.Pid)
	want := []struct {
		method, path string
		status       int
	}{{"GET", "/page", 200}, {"GET", "/missing", 404}}
	for _, side := range [][]*httpflow.Exchange{server, client} {
		for i, w := range want {
			e := side[i]
			if e.TLS != "openssl" || e.Method != w.method || e.Path != w.path || e.Status != w.status || e.Truncated ||
				e.Host != "localhost:"+port || e.Comm != "python3" {
				t.Errorf("%s event %d: %+v", e.Side, i, e)
			}
		}
	}
	if server[0].Side != "server" || client[0].Side != "client" || server[0].RemotePort != client[0].LocalPort {
		t.Errorf("server %+v\nclient %+v", server[0], client[0])
	}
	if server[0].ResponseBody != 1200 || client[0].ResponseBody != 1200 {
		t.Errorf("page body %d bytes served, %d received, want 1200", server[0].ResponseBody, client[0].ResponseBody)
	}
	r.noLoss()
}

// startMapAgent runs the whole agent with the l7 probe and its HTTP server
// on a free port (as vigil runs), and returns it and its service map's URL.
func startMapAgent(t *testing.T) (*agent.Agent, string) {
	t.Helper()
	testutil.RequireBPF(t)
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	cfg.Web.ListenAddress = addr
	a, err := agent.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), agent.Options{Probes: []string{"l7"}, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	ready, stop, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
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
	return a, "http://" + addr + "/api/v1/servicemap"
}

// httpEdges returns the service map's http edges from client to server.
func httpEdges(t *testing.T, url, client, server string) []servicemap.Edge {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var s servicemap.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	var out []servicemap.Edge
	for _, e := range s.Edges {
		if e.Client == client && e.Server == server && e.Protocol == "http" {
			out = append(out, e)
		}
	}
	return out
}

// The Go HTTPS pair, each under a name of its own, through the agent's
// /api/v1/servicemap: one http edge from client to server with exactly the
// requests made, the 500 its one error.
func TestGoHTTPSServiceMap(t *testing.T) {
	testutil.RequireBPF(t)
	cert, key := testutil.SelfSignedCert(t)
	bin := gobintest.Build(t, goTLSProgram, gobintest.Variant{})
	srvBin := testutil.MarkerExecutable(t, bin, "ths")
	cliBin := testutil.MarkerExecutable(t, bin, "thc")
	a, url := startMapAgent(t)
	attached := goAttached(t, a.Registry)
	p := startGoTLSPair(t, srvBin, cliBin, cert, key)
	waitGoAttached(t, a.Registry, attached, 2) // two files
	p.release(t)
	client, server := "process/"+filepath.Base(cliBin), "process/"+filepath.Base(srvBin)
	var edges []servicemap.Edge
	testutil.WaitFor(20*time.Second, func() bool {
		edges = httpEdges(t, url, client, server)
		return len(edges) == 1 && edges[0].Requests >= uint64(len(goTLSWant))
	})
	// A little longer, so that a request counted twice would show.
	time.Sleep(3 * time.Second)
	edges = httpEdges(t, url, client, server)
	if len(edges) != 1 {
		t.Fatalf("http edges %s → %s: %+v, want one", client, server, edges)
	}
	if e := edges[0]; e.Requests != uint64(len(goTLSWant)) || e.Errors != 1 || e.Latency.Count != uint64(len(goTLSWant)) {
		t.Fatalf("edge %+v: want %d requests, 1 error (the 500), %d latencies", e, len(goTLSWant), len(goTLSWant))
	}
}
