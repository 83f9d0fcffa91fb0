package l7

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/l7/http"
	"github.com/vigilproject/vigil/internal/testutil"
)

// need returns the path of a test peer or skips.
func need(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skipf("skipped: %s not installed", names[0])
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListen(t *testing.T, addr string) {
	t.Helper()
	if !testutil.WaitFor(5*time.Second, func() bool {
		c, err := net.Dial("tcp4", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing listens on %s", addr)
	}
}

// tlsConn is the records of one connection end, TLS plaintext and
// syscall bytes apart, in ring order.
type tlsConn struct {
	id       ConnID
	plain    []*ConnData // TLS == "openssl"
	cipher   []*ConnData // TLS == "": syscall records
	cipherAt []int       // index in the whole stream
	firstTLS int         // index in the whole stream of the first plaintext record
}

func byConn(evs []*ConnData, pid uint32) map[ConnID]*tlsConn {
	out := map[ConnID]*tlsConn{}
	for i, e := range evs {
		if e.PID != pid {
			continue
		}
		c := out[e.Conn]
		if c == nil {
			c = &tlsConn{id: e.Conn, firstTLS: -1}
			out[e.Conn] = c
		}
		switch e.TLS {
		case "openssl":
			if c.firstTLS < 0 {
				c.firstTLS = i
			}
			c.plain = append(c.plain, e)
		case "":
			c.cipher = append(c.cipher, e)
			c.cipherAt = append(c.cipherAt, i)
		}
	}
	return out
}

// exchanges parses a connection's plaintext records with the HTTP parser.
func (c *tlsConn) exchanges() []http.Exchange {
	p := http.NewConn(http.Config{}, nil)
	var out []http.Exchange
	for _, e := range c.plain {
		dir := http.Read
		if e.Direction == "write" {
			dir = http.Write
		}
		out = append(out, p.Feed(dir, e.Data, int(e.Length), e.Time.UnixNano())...)
	}
	return append(out, p.Close(time.Now().UnixNano())...)
}

// tlsRecordHead reports whether b starts like a TLS record (content type
// 20-23, version 3.x): ciphertext, never plaintext HTTP.
func tlsRecordHead(b []byte) bool {
	return len(b) >= 3 && b[0] >= 20 && b[0] <= 23 && b[1] == 3 && b[2] <= 4
}

// tlsFraming follows the TLS record layer of one direction of a byte
// stream, given as captured prefixes of calls of known length: every record
// header it can see must be a TLS one.
type tlsFraming struct {
	body   int    // bytes of the current record's body still to come
	head   []byte // a record header split across calls
	blind  bool   // a header fell in bytes not captured: nothing more to check
	offset int    // stream offset of the call fed next
	headAt int    // stream offset of the header being read
}

func (f *tlsFraming) feed(data []byte, length int) error {
	for o := 0; o < length && !f.blind; {
		if f.body > 0 {
			n := min(f.body, length-o)
			f.body -= n
			o += n
			continue
		}
		if o >= len(data) {
			f.blind = true
			break
		}
		if len(f.head) == 0 {
			f.headAt = f.offset + o
		}
		n := min(5-len(f.head), len(data)-o)
		f.head = append(f.head, data[o:o+n]...)
		o += n
		if len(f.head) < 5 {
			continue
		}
		if !tlsRecordHead(f.head) {
			return fmt.Errorf("no TLS record header at stream offset %d: %x", f.headAt, f.head)
		}
		f.body = int(f.head[3])<<8 | int(f.head[4])
		f.head = f.head[:0]
	}
	f.offset += length
	return nil
}

// summary is "METHOD path status" of an exchange or an access log line.
func summary(e http.Exchange) string { return fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status) }

// tlsExchanges checks the TLS invariants on every connection of pid and
// returns the exchanges parsed from the plaintext ("METHOD path status",
// sorted) and what is wrong.
func tlsExchanges(evs []*ConnData, pid uint32, role string) (got, problems []string) {
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	for id, c := range byConn(evs, pid) {
		if len(c.plain) == 0 {
			continue
		}
		for _, e := range c.plain {
			if e.Role != role || !strings.HasPrefix(e.Syscall, "SSL_") {
				bad("conn %+v: plaintext record role %s syscall %s, want %s SSL_*", id, e.Role, e.Syscall, role)
			}
			if tlsRecordHead(e.Data) {
				bad("conn %+v: TLS record carries ciphertext: %q", id, Printable(e.Data, 40))
			}
		}
		// The syscall records are the handshake: TLS records, all before
		// the first plaintext record; none after.
		frames := map[string]*tlsFraming{"read": {}, "write": {}}
		for i, e := range c.cipher {
			if c.cipherAt[i] > c.firstTLS {
				bad("conn %+v: syscall record (%s %d bytes) after the first plaintext record", id, e.Syscall, e.Length)
			}
			if err := frames[e.Direction].feed(e.Data, int(e.Length)); err != nil {
				bad("conn %+v: %s syscall bytes: %v", id, e.Direction, err)
			}
		}
		for _, x := range c.exchanges() {
			got = append(got, summary(x))
		}
	}
	slices.Sort(got)
	return got, problems
}

// checkTLSConns is tlsExchanges reporting the problems as errors.
func checkTLSConns(t *testing.T, evs []*ConnData, pid uint32, role string) []string {
	t.Helper()
	got, problems := tlsExchanges(evs, pid, role)
	for _, p := range problems {
		t.Error(p)
	}
	return got
}

// TestOpenSSLNginx: nginx serves HTTPS (Debian's libssl); curl -k asks for
// pages with several statuses, on a keep-alive connection and on new ones.
// nginx's plaintext appears as TLS=openssl records: parsed with the HTTP
// parser they give exactly the access log's requests and statuses; no
// plaintext record carries ciphertext, and the connection's syscall records
// are the handshake only.
func TestOpenSSLNginx(t *testing.T) {
	nginx := need(t, "nginx", "/usr/sbin/nginx")
	curl := need(t, "curl")
	dir := t.TempDir()
	cert, key := testutil.SelfSignedCert(t)
	port := freePort(t)
	page := strings.Repeat("vigil tls page\n", 8)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	log_format t '$status "$request"';
	access_log %[1]s/access.log t;
	sendfile off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d ssl;
		ssl_certificate %[3]s;
		ssl_certificate_key %[4]s;
		root %[1]s;
		location = /moved { return 301 /index.html; }
		location = /fail { return 500; }
	}
}
`, dir, port, cert, key)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListen(t, addr)

	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(cmd.Process.Pid)}
	p, s := startProbe(t, cfg)
	if p.openssl.Binaries() == 0 {
		t.Fatalf("nginx's libssl not attached: %+v", p.Obj.Status())
	}
	base := "https://" + addr
	// One keep-alive connection with four requests, then two more.
	runs := [][]string{
		{base + "/index.html", base + "/missing", base + "/moved", base + "/fail"},
		{base + "/index.html?q=1"},
		{base + "/nope"},
	}
	for _, urls := range runs {
		args := append([]string{"-sk", "--http1.1", "-o", "/dev/null", "-H", "X-Test: tls"}, urls...)
		if out, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
			t.Fatalf("curl %v: %v\n%s", urls, err, out)
		}
	}
	want := []string{"GET /index.html 200", "GET /missing 404", "GET /moved 301", "GET /fail 500", "GET /index.html 200", "GET /nope 404"}
	var logged []string
	if !testutil.WaitFor(5*time.Second, func() bool {
		logged = accessLog(t, filepath.Join(dir, "access.log"))
		return len(logged) == len(want)
	}) {
		t.Fatalf("access log: %q", logged)
	}
	slices.Sort(want)
	if !slices.Equal(logged, want) {
		t.Fatalf("access log %q, want %q", logged, want)
	}
	pid := uint32(cmd.Process.Pid)
	var got []string
	testutil.WaitFor(5*time.Second, func() bool {
		got, _ = tlsExchanges(s.all(), pid, "server")
		return len(got) >= len(logged)
	})
	got = checkTLSConns(t, s.all(), pid, "server")
	if !slices.Equal(got, logged) {
		t.Errorf("plaintext exchanges %q, access log %q", got, logged)
	}
	conns := 0
	for _, c := range byConn(s.all(), pid) {
		if len(c.plain) > 0 {
			conns++
			if len(c.cipher) == 0 {
				t.Errorf("conn %+v: no handshake records", c.id)
			}
		}
	}
	if conns != len(runs) {
		t.Errorf("%d connections with plaintext, want %d", conns, len(runs))
	}
	var req []byte
	for _, e := range s.all() {
		if e.TLS == "openssl" && e.Direction == "read" {
			req = append(req, e.Data...)
		}
	}
	if !bytes.Contains(req, []byte("\r\nX-Test: tls\r\n")) {
		t.Errorf("request headers not in the plaintext: %q", Printable(req, 200))
	}
	// The self-metrics: one plaintext record counted per record read,
	// nginx's libssl among the probed binaries.
	// (Counted at emit: the stream catches up with the gathered value.)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&tlsCollector{p: p})
	reg.MustRegister(p.disc.collectors()...)
	m, err := testutil.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	openssl := map[string]string{"library": "openssl"}
	counted := m.Value("vigil_l7_tls_records_total", openssl)
	records := 0
	testutil.WaitFor(2*time.Second, func() bool {
		records = 0
		for _, e := range s.all() {
			if e.TLS == "openssl" {
				records++
			}
		}
		return float64(records) >= counted
	})
	if counted != float64(records) || records == 0 {
		t.Errorf("vigil_l7_tls_records_total %v, %d records received", counted, records)
	}
	for name, want := range map[string]float64{"vigil_l7_tls_calls_unknown_connection_total": 0, "vigil_l7_tls_calls_missed_total": 0} {
		if got := m.Value(name, openssl); got != want {
			t.Errorf("%s %v, want %v", name, got, want)
		}
	}
	if got := m.Value("vigil_l7_tls_binaries", openssl); got < 1 {
		t.Errorf("vigil_l7_tls_binaries %v", got)
	}
	if got := m.Value("vigil_l7_discovery_processes_total", nil); got != 1 {
		t.Errorf("vigil_l7_discovery_processes_total %v, want 1 (nginx, the filter's one process)", got)
	}
}

// accessLog reads "status "METHOD /path?query HTTP/1.1"" lines as sorted
// "METHOD /path status".
func accessLog(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var status int
		var method, target string
		if _, err := fmt.Sscanf(l, `%d "%s %s`, &status, &method, &target); err != nil {
			continue
		}
		target, _, _ = strings.Cut(target, "?")
		out = append(out, fmt.Sprintf("%s %s %d", method, target, status))
	}
	slices.Sort(out)
	return out
}

// pyServer is a CPython HTTPS server (http.server wrapped by ssl, which
// calls SSL_read_ex/SSL_write_ex in libssl): 200 for /ok, 404 for /nf, 500
// for /err. It prints "ready" once it listens.
const pyServer = `
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/ok": 200, "/nf": 404, "/err": 500}.get(self.path, 400)
        body = b"python says %d\n" % code
        self.send_response(code)
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

// pyClient waits for a line on stdin, then asks for each path with urllib
// (a new connection each time) and prints the statuses.
const pyClient = `
import ssl, sys, urllib.request, urllib.error
sys.stdin.readline()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for path in sys.argv[2:]:
    try:
        r = urllib.request.urlopen("https://127.0.0.1:%s%s" % (sys.argv[1], path), context=ctx)
        code = r.status
        r.read()
    except urllib.error.HTTPError as e:
        code = e.code
    print(code, flush=True)
`

// startPyServer runs pyServer on a free port with env added and waits
// for it to listen.
func startPyServer(t *testing.T, python, cert, key string, env ...string) (*exec.Cmd, int) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(python, "-c", pyServer, fmt.Sprint(port), cert, key)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("python server: %q, %v", line, err)
	}
	return cmd, port
}

// pyClientRun is a started pyClient, held until release.
type pyClientRun struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out bytes.Buffer
}

func startPyClient(t *testing.T, python string, port int, paths ...string) *pyClientRun {
	t.Helper()
	c := &pyClientRun{cmd: exec.Command(python, append([]string{"-c", pyClient, fmt.Sprint(port)}, paths...)...)}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, os.Stderr
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill() })
	return c
}

func (c *pyClientRun) release(t *testing.T) string {
	t.Helper()
	if _, err := io.WriteString(c.in, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("python client: %v", err)
	}
	return c.out.String()
}

var pyPaths = []string{"/ok", "/nf", "/err", "/ok"}

func pyWant() []string {
	w := []string{"GET /ok 200", "GET /nf 404", "GET /err 500", "GET /ok 200"}
	slices.Sort(w)
	return w
}

// TestOpenSSLPython: a CPython HTTPS server and a urllib client, both on
// Debian's libssl through _ssl (SSL_read_ex/SSL_write_ex): the plaintext of
// both sides appears under the right pids and roles and parses to the
// requests made.
func TestOpenSSLPython(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	cert, key := testutil.SelfSignedCert(t)
	srv, port := startPyServer(t, python, cert, key)
	cli := startPyClient(t, python, port, pyPaths...)

	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(srv.Process.Pid), uint32(cli.cmd.Process.Pid)}
	p, s := startProbe(t, cfg)
	if p.openssl.Binaries() == 0 {
		t.Fatalf("python's libssl not attached: %+v", p.Obj.Status())
	}
	if out := cli.release(t); out != "200\n404\n500\n200\n" {
		t.Fatalf("client printed %q", out)
	}
	checkBothSides(t, s, uint32(srv.Process.Pid), uint32(cli.cmd.Process.Pid))
	// Every connection is closed and its SSL object freed: SSL_free took
	// each SSL's entry out of the SSL -> fd map.
	for _, pid := range []int{srv.Process.Pid, cli.cmd.Process.Pid} {
		if n := sslFDEntries(t, p, pid); n != 0 {
			t.Errorf("pid %d: %d SSL -> fd entries left after SSL_free", pid, n)
		}
	}
}

// sslFDEntries counts the kernel's SSL -> fd entries of a process.
func sslFDEntries(t *testing.T, p *Probe, pid int) int {
	t.Helper()
	var k struct {
		SSL  uint64
		TGID uint32
		Pad  uint32
	}
	var fd uint32
	n := 0
	it := p.Obj.Maps["ssl_fds"].Iterate()
	for it.Next(&k, &fd) {
		if k.TGID == uint32(pid) {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkBothSides waits for the four exchanges on each side and checks them.
func checkBothSides(t *testing.T, s *stream, srvPID, cliPID uint32) {
	t.Helper()
	want := pyWant()
	testutil.WaitFor(20*time.Second, func() bool {
		evs := s.all()
		a, _ := tlsExchanges(evs, srvPID, "server")
		b, _ := tlsExchanges(evs, cliPID, "client")
		return len(a) >= len(want) && len(b) >= len(want)
	})
	evs := s.all()
	if got := checkTLSConns(t, evs, srvPID, "server"); !slices.Equal(got, want) {
		t.Errorf("server (pid %d) plaintext: %q, want %q", srvPID, got, want)
	}
	if got := checkTLSConns(t, evs, cliPID, "client"); !slices.Equal(got, want) {
		t.Errorf("client (pid %d) plaintext: %q, want %q", cliPID, got, want)
	}
}

// TestOpenSSLNewProcesses: processes started after the probe. A CPython
// server loading a copy of libssl (a file no process had mapped: a new
// inode) is found by the periodic /proc scan and attached; a urllib client
// started after the probe on the system libssl (already attached) needs no
// scan. Both sides' plaintext is seen with their pids.
func TestOpenSSLNewProcesses(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	dir := t.TempDir()
	cert, key := testutil.SelfSignedCert(t)
	sysLib := libsslOf(t, python)
	// One process on the system libssl before the probe starts.
	before, _ := startPyServer(t, python, cert, key)

	cfg := DefaultConfig()
	cfg.TLS.RescanInterval = 500 * time.Millisecond
	cfg.PIDs = []uint32{uint32(before.Process.Pid)}
	p, s := startProbe(t, cfg)
	if !attachedTo(p, sysLib) {
		t.Fatalf("system libssl %s not attached at start: %+v", sysLib, p.Obj.Status())
	}

	libDir := filepath.Join(dir, "lib")
	if err := os.Mkdir(libDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyLib := filepath.Join(libDir, filepath.Base(sysLib))
	if err := testutil.CopyFile(sysLib, copyLib, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, port := startPyServer(t, python, cert, key, "LD_LIBRARY_PATH="+libDir)
	if got := libsslOfPID(t, srv.Process.Pid); got != copyLib {
		t.Fatalf("server maps %q, want the copy %s", got, copyLib)
	}
	allowPID(t, p, srv.Process.Pid)
	if !testutil.WaitFor(5*time.Second, func() bool { return attachedTo(p, copyLib) }) {
		t.Fatalf("the copy of libssl was not attached by the rescan: %+v", p.Obj.Status())
	}
	cli := startPyClient(t, python, port, pyPaths...)
	allowPID(t, p, cli.cmd.Process.Pid)
	if out := cli.release(t); out != "200\n404\n500\n200\n" {
		t.Fatalf("client printed %q", out)
	}
	if got := libsslOfPID(t, srv.Process.Pid); got != copyLib {
		t.Fatalf("server maps %q, want the copy %s", got, copyLib)
	}
	checkBothSides(t, s, uint32(srv.Process.Pid), uint32(cli.cmd.Process.Pid))
}

// attachedTo reports whether both SSL_read uprobes are placed in path.
func attachedTo(p *Probe, path string) bool {
	n := 0
	for _, st := range p.Obj.Status() {
		if (st.Name == "SSL_read" || st.Name == "SSL_read:return") && strings.HasPrefix(st.Detail, "binary "+path+" ") {
			n++
		}
	}
	return n == 2
}

func allowPID(t *testing.T, p *Probe, pid int) {
	t.Helper()
	if err := p.maps.PIDs.Put(uint32(pid), uint8(1)); err != nil {
		t.Fatal(err)
	}
}

// libsslOf is the libssl python's _ssl module loads here.
func libsslOf(t *testing.T, python string) string {
	t.Helper()
	out, err := exec.Command(python, "-c", "import ssl; print(open('/proc/self/maps').read())").Output()
	if err != nil {
		t.Fatal(err)
	}
	return libsslIn(t, string(out))
}

func libsslOfPID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	return libsslIn(t, string(b))
}

func libsslIn(t *testing.T, maps string) string {
	t.Helper()
	for _, l := range strings.Split(maps, "\n") {
		if m, ok := parseMapsLine(l); ok && strings.HasPrefix(filepath.Base(m.path), "libssl.so") {
			return m.path
		}
	}
	t.Fatal("python maps no libssl.so")
	return ""
}

func TestParseMapsLine(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		want mapping
	}{
		{"7f4db78a7000-7f4db78c5000 r-xp 00022000 fd:01 1835061                    /usr/lib/x86_64-linux-gnu/libssl.so.3", true,
			mapping{perms: "r-xp", key: fileKey{dev: 0xfd<<8 | 1, ino: 1835061}, path: "/usr/lib/x86_64-linux-gnu/libssl.so.3"}},
		{"00400000-00452000 r-xp 00000000 103:02 42 /opt/my app/bin", true,
			mapping{perms: "r-xp", key: fileKey{dev: 259<<8 | 2, ino: 42}, path: "/opt/my app/bin"}},
		{"7f00-7f01 r-xp 00000000 fd:01 77 /tmp/libssl.so.3 (deleted)", false, mapping{}},
		{"7ffd-7ffe rw-p 00000000 00:00 0                          [stack]", false, mapping{}},
		{"7ffd-7ffe rw-p 00000000 00:00 0", false, mapping{}},
		{"garbage", false, mapping{}},
		{"1-2 r-xp 0 zz:01 5 /x", false, mapping{}},
	} {
		m, ok := parseMapsLine(c.line)
		if ok != c.ok || m != c.want {
			t.Errorf("%q: %+v %v, want %+v %v", c.line, m, ok, c.want, c.ok)
		}
	}
}

func TestTLSCandidates(t *testing.T) {
	for path, want := range map[string]bool{
		"/usr/lib/x86_64-linux-gnu/libssl.so.3":    true,
		"/usr/lib/libssl.so.1.1":                   true,
		"/opt/app/lib/libssl-3a8b.so.3":            true,
		"/opt/envoy/lib/libboringssl.so":           true,
		"/usr/bin/node":                            true, // the executable
		"/usr/lib/x86_64-linux-gnu/libc.so.6":      false,
		"/usr/lib/x86_64-linux-gnu/libcrypto.so.3": false,
	} {
		if got := candidate(path, "/usr/bin/node"); got != want {
			t.Errorf("candidate(%s) = %v", path, got)
		}
	}
}

// tlsSymbols finds the four functions in libssl, none in an executable
// without TLS, and leaves Go binaries alone.
func TestTLSSymbols(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	lib := libsslOf(t, python)
	have, err := tlsSymbols(lib)
	if err != nil || len(have) != 5 {
		t.Errorf("%s: %v, %v; want the 4 functions and SSL_free", lib, have, err)
	}
	if have, err := tlsSymbols("/bin/true"); err != nil || len(have) != 0 {
		t.Errorf("/bin/true: %v, %v", have, err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if have, err := tlsSymbols(self); err != nil || have != nil {
		t.Errorf("Go test binary: %v, %v", have, err)
	}
	if _, err := tlsSymbols(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestTLSConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mod  func(*TLSConfig)
		want string
	}{
		{func(c *TLSConfig) {}, ""},
		{func(c *TLSConfig) { c.RescanInterval = 100 * time.Millisecond }, "tls.rescan_interval: 100ms must be between 500ms and 1m"},
		{func(c *TLSConfig) { c.RescanInterval = 2 * time.Minute }, "tls.rescan_interval: 2m0s must be between 500ms and 1m"},
		{func(c *TLSConfig) { c.MaxBinaries = 0 }, "tls.max_binaries: 0 must be between 1 and 1024"},
		{func(c *TLSConfig) { c.MaxBinaries = 5000 }, "tls.max_binaries: 5000 must be between 1 and 1024"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg.TLS)
		err := cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && err.Error() != c.want) {
			t.Errorf("%+v: %v, want %q", cfg.TLS, err, c.want)
		}
	}
}

// The TLS programs are uprobes (attached at run time through the uprobe
// sets).
func TestTLSProgramsAreUprobes(t *testing.T) {
	spec, err := loadL7()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(opensslPrograms(), goTLSPrograms...) {
		if ps := spec.Programs[name]; ps == nil || ps.Type != ebpf.Kprobe {
			t.Errorf("program %s: %+v", name, ps)
		}
	}
}

// pyUnixTLS runs TLS over a unix socket pair (a connection the probe never
// learns) after a line on stdin: 5 round trips of one SSL_write_ex and one
// SSL_read_ex each way.
const pyUnixTLS = `
import socket, ssl, sys, threading
sys.stdin.readline()
a, b = socket.socketpair()
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(sys.argv[1], sys.argv[2])
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
srv = sctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
cli = cctx.wrap_socket(b, do_handshake_on_connect=False)
t = threading.Thread(target=srv.do_handshake)
t.start()
cli.do_handshake()
t.join()
for i in range(5):
    cli.sendall(b"ping %d" % i)
    assert srv.recv(100) == b"ping %d" % i
    srv.sendall(b"pong %d" % i)
    assert cli.recv(100) == b"pong %d" % i
print("done", flush=True)
`

// TLS calls on a connection the probe does not track (a unix socket)
// emit nothing and are each counted.
func TestOpenSSLUnknownConnection(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	cert, key := testutil.SelfSignedCert(t)
	cmd := exec.Command(python, "-c", pyUnixTLS, cert, key)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Python maps libssl once it imports ssl, before reading stdin.
	if !testutil.WaitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
		return bytes.Contains(b, []byte("/libssl.so"))
	}) {
		t.Fatal("python never mapped libssl")
	}
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(cmd.Process.Pid)}
	p, s := startProbe(t, cfg)
	before, err := p.ReadTLSCounters()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || out.String() != "done\n" {
		t.Fatalf("python: %v, %q", err, out.String())
	}
	after, err := p.ReadTLSCounters()
	if err != nil {
		t.Fatal(err)
	}
	if n := after.UnknownConn - before.UnknownConn; n != 20 {
		t.Errorf("%d calls counted on an unknown connection, want 20", n)
	}
	if n := after.Records - before.Records; n != 0 {
		t.Errorf("%d TLS records emitted", n)
	}
	time.Sleep(200 * time.Millisecond)
	for _, e := range s.all() {
		if e.PID == uint32(cmd.Process.Pid) {
			t.Errorf("record of the unix-socket process: %+v", e)
		}
	}
}

// pyBuffered: over loopback TCP in one process, a server thread writes one
// 1000-byte TLS record; the client reads it 100 bytes at a time, so only
// its first SSL_read_ex makes a syscall and nine are served from
// OpenSSL's buffer.
const pyBuffered = `
import socket, ssl, sys, threading
sys.stdin.readline()
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(sys.argv[1], sys.argv[2])
payload = bytes(48 + i % 64 for i in range(1000))
def serve():
    c, _ = ls.accept()
    s = sctx.wrap_socket(c, server_side=True)
    s.sendall(payload)
    s.recv(1)
    s.close()
t = threading.Thread(target=serve)
t.start()
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
cli = cctx.wrap_socket(socket.create_connection(ls.getsockname()))
got = b""
while len(got) < 1000:
    got += cli.recv(100)
assert got == payload
cli.sendall(b"x")
t.join()
print("done", flush=True)
`

// Reads served from OpenSSL's buffer (no syscall during the call) are
// attributed to the connection through the SSL object's last fd.
func TestOpenSSLBufferedReads(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	cert, key := testutil.SelfSignedCert(t)
	cmd := exec.Command(python, "-c", pyBuffered, cert, key)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(cmd.Process.Pid)}
	p, s := startProbe(t, cfg)
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || out.String() != "done\n" {
		t.Fatalf("python: %v, %q", err, out.String())
	}
	pid := uint32(cmd.Process.Pid)
	var reads []*ConnData
	testutil.WaitFor(5*time.Second, func() bool {
		reads = nil
		for _, e := range s.all() {
			if e.PID == pid && e.TLS == "openssl" && e.Role == "client" && e.Direction == "read" {
				reads = append(reads, e)
			}
		}
		return len(reads) >= 10
	})
	want := make([]byte, 1000)
	for i := range want {
		want[i] = byte(48 + i%64)
	}
	var got []byte
	for _, e := range reads {
		if e.Length != 100 || e.Conn != reads[0].Conn || e.Syscall != "SSL_read" {
			t.Errorf("read record %+v %s length %d", e.Conn, e.Syscall, e.Length)
		}
		got = append(got, e.Data...)
	}
	if len(reads) != 10 || !bytes.Equal(got, want) {
		t.Errorf("%d client reads, data %q", len(reads), Printable(got, 80))
	}
	tc, err := p.ReadTLSCounters()
	if err != nil {
		t.Fatal(err)
	}
	if tc.UnknownConn != 0 {
		t.Errorf("%d calls on unknown connections", tc.UnknownConn)
	}
}

// A process in another mount namespace (as in a container) maps a libssl
// at a path the agent's namespace does not have: the file is reached
// through /proc/PID/root, attached, and the process's plaintext is seen.
func TestOpenSSLOtherMountNamespace(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	unshare := need(t, "unshare")
	dir := t.TempDir()
	cert, key := testutil.SelfSignedCert(t)
	sysLib := libsslOf(t, python)
	// The library is copied into a tmpfs mounted over lib inside the
	// namespace only: from here, lib stays empty.
	lib := filepath.Join(dir, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`mount -t tmpfs none %[1]s && cp %[2]s %[1]s/ && LD_LIBRARY_PATH=%[1]s exec %[3]s -c "$0" "$@"`, lib, sysLib, python)
	port := freePort(t)
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script, pyServer, fmt.Sprint(port), cert, key)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("python server: %q, %v", line, err)
	}
	inNS := filepath.Join(lib, filepath.Base(sysLib))
	if got := libsslOfPID(t, cmd.Process.Pid); got != inNS {
		t.Fatalf("server maps %q, want %s", got, inNS)
	}
	if _, err := os.Stat(inNS); !os.IsNotExist(err) {
		t.Fatalf("%s visible outside the namespace: %v", inNS, err)
	}
	cli := startPyClient(t, python, port, pyPaths...)
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(cmd.Process.Pid), uint32(cli.cmd.Process.Pid)}
	p, s := startProbe(t, cfg)
	viaRoot := fmt.Sprintf("/proc/%d/root%s", cmd.Process.Pid, inNS)
	if !attachedTo(p, viaRoot) {
		t.Fatalf("%s not attached: %+v", viaRoot, p.Obj.Status())
	}
	if out := cli.release(t); out != "200\n404\n500\n200\n" {
		t.Fatalf("client printed %q", out)
	}
	checkBothSides(t, s, uint32(cmd.Process.Pid), uint32(cli.cmd.Process.Pid))
}

// A client with OpenSSL linked statically (SSL_read and SSL_write are its
// own .symtab functions, no libssl mapped) is found through its executable
// and its plaintext is seen, as is the CPython server's on libssl.
func TestOpenSSLStaticBinary(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	clang := need(t, "clang")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libssl.a"); err != nil {
		t.Skip("skipped: libssl.a not installed (apt-get install libssl-dev)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tlsclient")
	if out, err := exec.Command(clang, "-O1", "-o", bin, filepath.Join("testdata", "tlsclient.c"),
		"-Wl,-Bstatic", "-lssl", "-lcrypto", "-Wl,-Bdynamic", "-lpthread", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building the static client: %v\n%s", err, out)
	}
	cert, key := testutil.SelfSignedCert(t)
	srv, port := startPyServer(t, python, cert, key)
	cli := exec.Command(bin, append([]string{fmt.Sprint(port)}, pyPaths...)...)
	var out bytes.Buffer
	cli.Stdout, cli.Stderr = &out, os.Stderr
	in, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Process.Kill() })
	if maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cli.Process.Pid)); bytes.Contains(maps, []byte("libssl")) {
		t.Fatal("the static client maps a libssl")
	}
	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(srv.Process.Pid), uint32(cli.Process.Pid)}
	p, s := startProbe(t, cfg)
	if !attachedTo(p, bin) {
		t.Fatalf("static client %s not attached: %+v", bin, p.Obj.Status())
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := cli.Wait(); err != nil || out.String() != "200\n404\n500\n200\n" {
		t.Fatalf("static client: %v, printed %q", err, out.String())
	}
	checkBothSides(t, s, uint32(srv.Process.Pid), uint32(cli.Process.Pid))
}
