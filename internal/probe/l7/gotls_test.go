package l7

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/gobin"
	"github.com/vigilproject/vigil/internal/gobin/gobintest"
	l7http "github.com/vigilproject/vigil/internal/l7/http"
	"github.com/vigilproject/vigil/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gobintest.Cleanup()
	os.Exit(code)
}

// httpsProg is an HTTPS server and client (net/http over crypto/tls,
// HTTP/1.1). Both wait for a line on stdin before touching the network, so
// the test can start them, see the probes attached, then let them go.
//
//	prog server CERT KEY     print "port N", serve until stdin closes
//	prog client PORT N CERT  make N requests (GET /hello?i=, GET /missing,
//	                         POST /items/<i>, in turn), print "ok N <ns taken>"
const httpsProg = `package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	in.ReadString('\n')
	switch os.Args[1] {
	case "server":
		mux := http.NewServeMux()
		mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello world") })
		mux.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusCreated)
		})
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
		srv := &http.Server{Handler: mux, TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		go srv.ServeTLS(ln, os.Args[2], os.Args[3])
		io.Copy(io.Discard, in)
	case "client":
		pemBytes, err := os.ReadFile(os.Args[4])
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		c := &http.Client{Transport: tr}
		n, _ := strconv.Atoi(os.Args[3])
		base := "https://127.0.0.1:" + os.Args[2]
		start := time.Now()
		for i := 0; i < n; i++ {
			var resp *http.Response
			var err error
			switch i % 3 {
			case 0:
				resp, err = c.Get(base + "/hello?i=" + strconv.Itoa(i))
			case 1:
				resp, err = c.Get(base + "/missing")
			case 2:
				resp, err = c.Post(base+"/items/"+strconv.Itoa(i), "text/plain", strings.NewReader("body"))
			}
			if err != nil {
				panic(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		fmt.Printf("ok %d %d\n", n, time.Since(start).Nanoseconds())
	}
}
`

// want is the exchange the client makes as its i-th request.
func wantExchange(i int) (method, path string, status int) {
	switch i % 3 {
	case 0:
		return "GET", "/hello", 200
	case 1:
		return "GET", "/missing", 404
	}
	return "POST", fmt.Sprintf("/items/%d", i), 201
}

// child is a test program waiting for its go line.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startChild(t testing.TB, p *Probe, bin string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(bin, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Connections are learnt only for the processes of the pid filter.
	if p != nil {
		if err := p.maps.PIDs.Put(uint32(cmd.Process.Pid), uint8(1)); err != nil {
			t.Fatal(err)
		}
	}
	return &child{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

func (c *child) line(t testing.TB) string {
	t.Helper()
	s, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("pid %d: reading its output: %v", c.cmd.Process.Pid, err)
	}
	return strings.TrimSpace(s)
}

// inspected is what the probe made of the executable of pid ("" while not yet seen).
func inspected(t testing.TB, p *Probe, pid int) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
		t.Fatal(err)
	}
	p.goTLS.mu.Lock()
	defer p.goTLS.mu.Unlock()
	return p.goTLS.inspected[goFileID{dev: st.Dev, ino: st.Ino}]
}

// waitInspected waits for the periodic scan to reach pid's executable.
func waitInspected(t testing.TB, p *Probe, pid int) string {
	t.Helper()
	var r string
	testutil.WaitFor(30*time.Second, func() bool { r = inspected(t, p, pid); return r != "" })
	return r
}

// exchanges parses the Go TLS plaintext records of pid, connection by
// connection, with the HTTP parser; it also returns the syscall records of
// those connections.
func exchanges(evs []*ConnData, pid uint32) (out []l7http.Exchange, plainSyscall []*ConnData) {
	conns := map[ConnID]*l7http.Conn{}
	tlsConns := map[ConnID]bool{}
	var order []ConnID
	for _, e := range evs {
		if e.PID == pid && e.TLS == "go" {
			tlsConns[e.Conn] = true
		}
	}
	for _, e := range evs {
		if e.PID != pid || !tlsConns[e.Conn] {
			continue
		}
		if e.TLS == "" {
			plainSyscall = append(plainSyscall, e)
			continue
		}
		c := conns[e.Conn]
		if c == nil {
			c = l7http.NewConn(l7http.Config{}, nil)
			conns[e.Conn] = c
			order = append(order, e.Conn)
		}
		dir := l7http.Read
		if e.Direction == "write" {
			dir = l7http.Write
		}
		out = append(out, c.Feed(dir, e.Data, int(e.Length), e.Time.UnixNano())...)
	}
	return out, plainSyscall
}

// The plaintext of a Go HTTPS server and client, built by two toolchains,
// stripped or not (and position-independent, and cgo linked by the C
// linker), started after the probe: both sides' requests and
// responses, exactly as many as the client made, with method, path and
// status; the connection's syscall records never carry plaintext.
func TestGoTLSKernel(t *testing.T) {
	testutil.RequireBPF(t)
	certFile, keyFile := testutil.SelfSignedCert(t)
	// Position-independent too: the itab is then found from the probed
	// instruction's run-time address.
	variants := append(slices.Clone(gobintest.Variants), gobintest.Variant{PIE: true}, gobintest.Variant{External: true, Stripped: true})
	bins := map[gobintest.Variant]string{}
	for _, v := range variants {
		bins[v] = gobintest.Build(t, httpsProg, v)
	}
	p, s := startProbe(t, DefaultConfig())
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			n := 30
			if v == (gobintest.Variant{Stripped: true}) {
				n = 1000 // the server must survive many probed returns
			}
			bin := bins[v]
			srv := startChild(t, p, bin, "server", certFile, keyFile)
			if r := waitInspected(t, p, srv.cmd.Process.Pid); r != goAttached {
				t.Fatalf("server binary: %q, want %q", r, goAttached)
			}
			fmt.Fprintln(srv.in, "go")
			var port int
			if _, err := fmt.Sscanf(srv.line(t), "port %d", &port); err != nil {
				t.Fatal(err)
			}
			cli := startChild(t, p, bin, "client", fmt.Sprint(port), fmt.Sprint(n), certFile)
			fmt.Fprintln(cli.in, "go")
			if got := cli.line(t); !strings.HasPrefix(got, fmt.Sprintf("ok %d ", n)) {
				t.Fatalf("client: %q", got)
			}
			if err := cli.cmd.Wait(); err != nil {
				t.Fatalf("client: %v", err)
			}
			if err := unix.Kill(srv.cmd.Process.Pid, 0); err != nil {
				t.Fatalf("server died under the probes: %v", err)
			}
			spid, cpid := uint32(srv.cmd.Process.Pid), uint32(cli.cmd.Process.Pid)
			var srvEx, cliEx []l7http.Exchange
			var srvSys, cliSys []*ConnData
			ok := testutil.WaitFor(10*time.Second, func() bool {
				evs := s.all()
				srvEx, srvSys = exchanges(evs, spid)
				cliEx, cliSys = exchanges(evs, cpid)
				return len(srvEx) >= n && len(cliEx) >= n
			})
			if !ok || len(srvEx) != n || len(cliEx) != n {
				c, _ := p.GoTLSCounters()
				for _, e := range s.all() {
					if e.PID == uint32(cli.cmd.Process.Pid) && e.TLS == "go" {
						t.Logf("client %+v %s len=%d %q", e.Conn, e.Direction, e.Length, Printable(e.Data, 60))
					}
				}
				for _, e := range cliEx {
					t.Logf("client exchange %s %s %d", e.Method, e.Path, e.Status)
				}
				t.Fatalf("exchanges: server %d, client %d, want %d each (counters %+v)", len(srvEx), len(cliEx), n, c)
			}
			for side, exs := range map[string][]l7http.Exchange{"server": srvEx, "client": cliEx} {
				for i, e := range exs {
					m, path, status := wantExchange(i)
					if e.Method != m || e.Path != path || e.Status != status || e.Role.String() != side {
						t.Fatalf("%s exchange %d: %s %s %d role %s, want %s %s %d", side, i, e.Method, e.Path, e.Status, e.Role, m, path, status)
					}
				}
			}
			for _, e := range append(srvSys, cliSys...) {
				if bytes.Contains(e.Data, []byte("HTTP/1.1")) {
					t.Fatalf("plaintext in a syscall record of a TLS connection: %+v %q", e.Conn, e.Data)
				}
			}
			fmt.Fprintln(srv.in, "")
			srv.in.Close()
			if err := srv.cmd.Wait(); err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
	c, err := p.GoTLSCounters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Go TLS counters: %+v", c)
	if c.Records == 0 || c.ReadFault != 0 || c.NotTCP != 0 {
		t.Errorf("counters %+v: want records, no read faults, no non-TCP conns", c)
	}
}

// Executables that are not Go programs with crypto/tls get no probes, and
// say why.
func TestGoTLSInspectResults(t *testing.T) {
	testutil.RequireBPF(t)
	noTLS := gobintest.Build(t, "package main\n\nimport \"os\"\n\nfunc main() { os.Stdin.Read(make([]byte, 1)) }\n", gobintest.Variant{Stripped: true})
	p, _ := startProbe(t, DefaultConfig())
	for bin, want := range map[string]string{noTLS: goNoTLS, "/bin/cat": goNotGo} {
		c := startChild(t, p, bin)
		if got := waitInspected(t, p, c.cmd.Process.Pid); got != want {
			t.Errorf("%s: %q, want %q", bin, got, want)
		}
	}
	// The metrics count them (with every other executable on the host).
	m, err := testutil.Gather(p.Env.Registerer.(*prometheus.Registry))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{goNoTLS, goNotGo} {
		if v := m.Value("vigil_l7_go_tls_binaries_total", map[string]string{"result": r}); v < 1 {
			t.Errorf("vigil_l7_go_tls_binaries_total{result=%s} = %v, want at least 1", r, v)
		}
	}
	for _, reason := range []string{"no_entry", "not_tcp", "unknown_fd", "read_fault"} {
		if _, ok := m.Get("vigil_l7_go_tls_skipped_total", map[string]string{"reason": reason}); !ok {
			t.Errorf("no vigil_l7_go_tls_skipped_total{reason=%s}", reason)
		}
	}
	if _, ok := m.Get("vigil_uprobe_binaries", map[string]string{"program": "go_tls_return"}); !ok {
		t.Error("no vigil_uprobe_binaries for the Go TLS return probes")
	}
}

// The offsets the kernel walks from a *tls.Conn to its fd, and the
// goroutine's stack bounds, are those of the DWARF of both toolchains'
// builds.
func TestGoTLSOffsets(t *testing.T) {
	for _, tc := range []string{"", gobintest.OldToolchain} {
		b, err := gobin.Open(gobintest.Build(t, httpsProg, gobintest.Variant{Toolchain: tc}))
		if err != nil {
			t.Fatal(err)
		}
		off := func(typ, field string) uint64 {
			t.Helper()
			o, err := b.FieldOffset(typ, field)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		for _, c := range []struct {
			what      string
			got, want uint64
		}{
			{"tls.Conn.conn", off("crypto/tls.Conn", "conn"), goTLSConnConnOff},
			{"net.TCPConn.conn.fd", off("net.TCPConn", "conn") + off("net.conn", "fd"), goTCPConnFDOff},
			{"net.netFD.pfd.Sysfd", off("net.netFD", "pfd") + off("internal/poll.FD", "Sysfd"), goNetFDSysfdOff},
			{"runtime.g.stack.lo", off("runtime.g", "stack") + off("runtime.stack", "lo"), 0},
			{"runtime.g.stack.hi", off("runtime.g", "stack") + off("runtime.stack", "hi"), 8},
		} {
			if c.got != c.want {
				t.Errorf("%s: %s at %d, the probe reads %d", b.GoVersion, c.what, c.got, c.want)
			}
		}
		b.Close()
	}
}

// goTLSProgStats sums the run time and runs of this process's Go TLS
// uprobe programs (bpf_stats must be on).
func goTLSProgStats(tb testing.TB) (time.Duration, uint64) {
	ids, err := testutil.ProgramIDsOf(os.Getpid())
	if err != nil {
		tb.Fatal(err)
	}
	var d time.Duration
	var n uint64
	for id := range ids {
		prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue
		}
		info, err := prog.Info()
		st, err2 := prog.Stats()
		prog.Close()
		if err != nil || err2 != nil || !strings.HasPrefix(info.Name, "uprobe_go_tls") {
			continue
		}
		d += st.Runtime
		n += st.RunCount
	}
	return d, n
}

// BenchmarkGoTLSRequest is one HTTPS request (keep-alive, 256 bytes of
// headers each way) between a Go client and server in other processes,
// without the probe and with it: the client's own time per request, and
// with the probe the BPF time of the Go TLS programs per request (4 uprobe
// hits: Write entry on each side, Read entry and RET on each side).
func BenchmarkGoTLSRequest(b *testing.B) {
	certFile, keyFile := testutil.SelfSignedCert(b)
	bin := gobintest.Build(b, httpsProg, gobintest.Variant{Stripped: true})
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var p *Probe
			if on {
				stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
				testutil.SkipIfNotPermitted(b, err)
				defer stats.Close()
				p, _ = startProbe(b, DefaultConfig())
			}
			srv := startChild(b, p, bin, "server", certFile, keyFile)
			if on && waitInspected(b, p, srv.cmd.Process.Pid) != goAttached {
				b.Fatal("server binary not attached")
			}
			fmt.Fprintln(srv.in, "go")
			var port int
			if _, err := fmt.Sscanf(srv.line(b), "port %d", &port); err != nil {
				b.Fatal(err)
			}
			cli := startChild(b, p, bin, "client", fmt.Sprint(port), fmt.Sprint(b.N), certFile)
			d0, n0 := goTLSProgStats(b)
			b.ResetTimer()
			fmt.Fprintln(cli.in, "go")
			var n int
			var ns int64
			if _, err := fmt.Sscanf(cli.line(b), "ok %d %d", &n, &ns); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(ns)/float64(b.N), "client-ns/request")
			if on {
				d, runs := goTLSProgStats(b)
				b.ReportMetric(float64(d-d0)/float64(b.N), "bpf-ns/request")
				b.ReportMetric(float64(runs-n0)/float64(b.N), "runs/request")
			}
		})
	}
}
