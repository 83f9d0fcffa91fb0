package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// secret is sent as a credential header in every request of these tests; it
// must appear in no output.
const secret = "secret-XYZ"

// httpServer serves /ok, /fail/* (500) and /slow/* (30 ms) from this process.
func httpServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/fail"):
			http.Error(w, "boom", http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/slow"):
			time.Sleep(30 * time.Millisecond)
			io.WriteString(w, "slow")
		default:
			w.Header().Set("X-Request-Id", "rid-1")
			io.WriteString(w, "ok")
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// curlAuth asks url with the secret bearer token (and a header that may be
// listed), like a real client would.
func curlAuth(t *testing.T, urls ...string) {
	t.Helper()
	args := []string{"-sS", "-o", "/dev/null", "-H", "Authorization: Bearer " + secret, "-H", "Cookie: session=" + secret, "-H", "X-Request-Id: rid-1"}
	if out, err := exec.Command("curl", append(args, urls...)...).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
}

// until repeats warm (a request) until a line of lines matches ok, and
// returns every line read so far.
func until(t *testing.T, lines <-chan string, warm func(), ok func(string) bool) []string {
	t.Helper()
	var got []string
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	warm()
	for {
		select {
		case l, open := <-lines:
			if !open {
				t.Fatalf("vigil exited; output so far: %q", got)
			}
			got = append(got, l)
			if ok(l) {
				return got
			}
		case <-tick.C:
			warm()
		case <-deadline:
			t.Fatalf("timed out; output so far: %q", got)
		}
	}
}

// drain reads lines for d.
func drain(lines <-chan string, d time.Duration) []string {
	var got []string
	end := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-end:
			return got
		}
	}
}

func noSecret(t *testing.T, what string, out []string) {
	t.Helper()
	for _, l := range out {
		if strings.Contains(l, secret) || strings.Contains(l, "Bearer") {
			t.Errorf("%s leaks the credential: %s", what, l)
		}
	}
}

// `vigil trace http -o json --pid P --status 5xx` prints the 500s this
// process answered, nothing else, and never a header value.
func TestTraceHTTPJSONFilters(t *testing.T) {
	bin := buildVigil(t)
	base := httpServer(t)
	lines := startCmd(t, bin, "trace", "http", "-o", "json", "--pid", strconv.Itoa(os.Getpid()), "--status", "5xx")
	out := until(t, lines, func() { curlAuth(t, base+"/fail/warm") }, func(l string) bool { return strings.Contains(l, `"/fail/warm"`) })
	curlAuth(t, base+"/ok", base+"/slow/1", base+"/fail/x?token=abc")
	out = append(out, until(t, lines, func() {}, func(l string) bool { return strings.Contains(l, `"/fail/x"`) })...)
	out = append(out, drain(lines, time.Second)...)
	noSecret(t, "trace http -o json", out)
	for _, l := range out {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if e["kind"] != "http" || e["side"] != "server" || int(e["pid"].(float64)) != os.Getpid() || e["status"].(float64) != 500 ||
			!strings.HasPrefix(e["path"].(string), "/fail/") || e["method"] != "GET" || e["route"] == "" || e["duration_ns"].(float64) <= 0 {
			t.Errorf("filters let through %s", l)
		}
		if _, ok := e["request_headers"]; ok {
			t.Errorf("headers without l7.http.headers: %s", l)
		}
	}
}

// The table with --method and --min-duration shows the slow GETs of both
// sides (this process serving, curl asking); listed headers appear in JSON,
// credential ones never.
func TestTraceHTTPTable(t *testing.T) {
	bin := buildVigil(t)
	base := httpServer(t)
	cfg := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(cfg, []byte("l7:\n  http:\n    headers: [x-request-id, user-agent]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := startCmd(t, bin, "trace", "http", "-c", cfg, "--method", "get", "--min-duration", "20ms")
	out := until(t, lines, func() { curlAuth(t, base+"/slow/warm") }, func(l string) bool { return strings.Contains(l, "/slow/warm") })
	if !strings.HasPrefix(out[0], "TIME") || !strings.Contains(out[0], "STATUS") || !strings.Contains(out[0], "DUR_MS") {
		t.Errorf("table header %q", out[0])
	}
	curlAuth(t, base+"/ok", base+"/slow/2")
	out = append(out, drain(lines, 3*time.Second)...)
	noSecret(t, "trace http table", out)
	var slow2 []string
	for _, l := range out[1:] {
		if strings.Contains(l, " /ok ") {
			t.Errorf("--min-duration let /ok through: %s", l)
		}
		if strings.Contains(l, "/slow/2") {
			slow2 = append(slow2, l)
		}
	}
	if len(slow2) != 2 || !strings.Contains(strings.Join(slow2, "\n"), " server ") || !strings.Contains(strings.Join(slow2, "\n"), " client ") {
		t.Errorf("/slow/2 lines %q, want one server and one client", slow2)
	}

	// The same config in JSON: the listed header is there, the credentials not.
	lines = startCmd(t, bin, "trace", "http", "-c", cfg, "-o", "json", "--pid", strconv.Itoa(os.Getpid()))
	out = until(t, lines, func() { curlAuth(t, base+"/ok") }, func(l string) bool { return strings.Contains(l, `"/ok"`) })
	noSecret(t, "trace http -o json with headers", out)
	var e struct {
		RequestHeaders  map[string]string `json:"request_headers"`
		ResponseHeaders map[string]string `json:"response_headers"`
	}
	if err := json.Unmarshal([]byte(out[len(out)-1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.RequestHeaders["x-request-id"] != "rid-1" || !strings.HasPrefix(e.RequestHeaders["user-agent"], "curl/") || len(e.RequestHeaders) != 2 ||
		e.ResponseHeaders["x-request-id"] != "rid-1" {
		t.Errorf("headers %+v %+v", e.RequestHeaders, e.ResponseHeaders)
	}
}

// `vigil run` with the l7 probe: the RED metrics on /metrics, an event rule
// alert on stdout, and the credential in neither.
func TestRunHTTPMetricsAndAlerts(t *testing.T) {
	bin := buildVigil(t)
	base := httpServer(t)
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	ruleFile := filepath.Join(dir, "http.yaml")
	rule := "- rule: SlowHTTP\n  event: http\n  condition: evt.path.startsWith(\"/slow/\") && evt.side == \"server\"\n" +
		"  output: '%{evt.method} %{evt.path} %{evt.host} %{evt.status}'\n  severity: warning\n  group_by: [evt.path]\n"
	if err := os.WriteFile(ruleFile, []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vigil.yaml")
	conf := fmt.Sprintf(`web: {listen_address: "%s"}
probes:
  l7: {enabled: true}
rules: {enabled: false}
alerting: {state_file: %s/alerts.json, stdout: true}
event_rules: {builtin: false, files: [%s], watch_interval: 0s}
`, addr, dir, ruleFile)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := startCmd(t, bin, "run", "-c", cfg, "--log.level", "warn")
	out := until(t, lines, func() { curlAuth(t, base+"/slow/1", base+"/ok", base+"/fail/1") }, func(l string) bool { return strings.Contains(l, "SlowHTTP") })
	out = append(out, drain(lines, time.Second)...)
	noSecret(t, "vigil run stdout alerts", out)
	if !strings.Contains(strings.Join(out, "\n"), "GET /slow/1") {
		t.Errorf("alert output %q", out)
	}
	text, err := testutil.ScrapeText("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), secret) || strings.Contains(string(text), "Bearer") {
		t.Error("/metrics leaks the credential")
	}
	m, err := testutil.ParseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	srv := map[string]string{"service": serviceOfSelf(t), "http_request_method": "GET"}
	for _, c := range []struct {
		status, route string
	}{{"200", "/ok"}, {"500", "/fail/{id}"}, {"200", "/slow/{id}"}} {
		l := map[string]string{"http_response_status_code": c.status, "http_route": c.route}
		for k, v := range srv {
			l[k] = v
		}
		if v := m.Value("http_server_request_duration_seconds", l); v < 1 {
			t.Errorf("server %v: %v requests; series %v", l, v, m.Series("http_server_request_duration_seconds"))
		}
	}
	if v := m.Value("http_client_request_duration_seconds", map[string]string{"service": "curl", "http_route": "/fail/{id}",
		"http_response_status_code": "500", "server_address": "127.0.0.1"}); v < 1 {
		t.Errorf("client side: %v; series %v", v, m.Series("http_client_request_duration_seconds"))
	}
	if v := m.Value("vigil_http_exchanges_total", nil); v < 6 {
		t.Errorf("vigil_http_exchanges_total %v", v)
	}
}

// serviceOfSelf is this test process's service name: its comm.
func serviceOfSelf(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
