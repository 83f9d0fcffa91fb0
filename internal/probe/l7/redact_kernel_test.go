package l7

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/testutil"
)

// pySecrets runs a CPython http.server (plain, or wrapped in ssl with "tls")
// in a thread, prints "ready", waits for a line on stdin, then makes
// requests with urllib carrying Authorization and Cookie headers; the server
// answers with a Set-Cookie. Every secret value holds "secret-XYZ".
const pySecrets = `
import http.server, ssl, sys, threading, urllib.request
tls = sys.argv[1] == "tls"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Set-Cookie", "s=secret-XYZ; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
cctx = None
if tls:
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv.socket = sctx.wrap_socket(srv.socket, server_side=True)
    cctx = ssl.create_default_context()
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
threading.Thread(target=srv.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
url = "%s://127.0.0.1:%d/item" % ("https" if tls else "http", srv.server_address[1])
for i in range(int(sys.argv[4])):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer secret-XYZ", "Cookie": "s=secret-XYZ"})
    urllib.request.urlopen(req, context=cctx).read()
print("done", flush=True)
`

// TestRedactKernel: requests with Authorization and Cookie headers, and
// responses with Set-Cookie, over plain HTTP (syscall records) and over
// OpenSSL (TLS plaintext records) between the two ends of one CPython
// process: no conn_data event holds the secret, in Data or in the base64
// data field, and each header appears with its value starred.
func TestRedactKernel(t *testing.T) {
	python := need(t, "/usr/bin/python3", "python3")
	cert, key := testutil.SelfSignedCert(t)
	const requests = 3
	for _, mode := range []string{"plain", "tls"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(python, "-c", pySecrets, mode, cert, key, strconv.Itoa(requests))
			cmd.Stderr = os.Stderr
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			outPipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			out := bufio.NewReader(outPipe)
			if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("python: %q, %v", line, err)
			}
			pid := uint32(cmd.Process.Pid)
			cfg := DefaultConfig()
			cfg.PIDs = []uint32{pid}
			p, s := startProbe(t, cfg)
			if mode == "tls" && p.openssl.Binaries() == 0 {
				t.Fatalf("python's libssl not attached: %+v", p.Obj.Status())
			}
			if _, err := io.WriteString(in, "go\n"); err != nil {
				t.Fatal(err)
			}
			if line, err := out.ReadString('\n'); err != nil || line != "done\n" {
				t.Fatalf("python: %q, %v", line, err)
			}

			wantTLS := map[string]string{"plain": "", "tls": "openssl"}[mode]
			// Each request: Authorization and Cookie written by the client
			// and read by the server, Set-Cookie written by the server and
			// read by the client.
			const perRequest = 6
			want := []string{"\r\nAuthorization: " + strings.Repeat("*", len("Bearer secret-XYZ")) + "\r\n",
				"\r\nCookie: " + strings.Repeat("*", len("s=secret-XYZ")) + "\r\n",
				"\r\nSet-Cookie: " + strings.Repeat("*", len("s=secret-XYZ; Path=/")) + "\r\n"}
			count := func(evs []*ConnData) map[string]int {
				seen := map[string]int{}
				for _, e := range evs {
					for _, w := range want {
						if e.TLS == wantTLS && bytes.Contains(e.Data, []byte(w)) {
							seen[e.Direction+strings.TrimSpace(strings.Split(w, ":")[0])]++
						}
					}
				}
				return seen
			}
			evs := waitEvents(t, s, "the redacted headers", func(evs []*ConnData) bool {
				seen := count(evs)
				return len(seen) == 6 && p.redact.redacted.Load() >= perRequest*requests
			})
			// Every header, each direction, once per request.
			for k, n := range count(evs) {
				if n != requests {
					t.Errorf("%q seen %d times, want %d", k, n, requests)
				}
			}
			if got := p.redact.redacted.Load(); got != perRequest*requests {
				t.Errorf("vigil_l7_headers_redacted_total %d, want %d", got, perRequest*requests)
			}
			for _, e := range evs {
				raw, err := base64.StdEncoding.DecodeString(e.DataB64)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(e.Data, []byte("secret-XYZ")) || bytes.Contains(raw, []byte("secret-XYZ")) {
					t.Errorf("secret in %s %s record (tls %q): %q", e.Role, e.Direction, e.TLS, raw)
				}
			}
			if p.redact.evicted.Load() != 0 {
				t.Errorf("%d redaction states evicted", p.redact.evicted.Load())
			}
		})
	}
}
