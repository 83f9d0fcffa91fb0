package httpflow_test

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/testutil"
)

// accessLine is one line of the nginx access log the test configures.
type accessLine struct {
	status  int
	seconds float64 // $request_time
	reqLen  int64   // $request_length
	sent    int64   // $bytes_sent
	uri     string
}

// startNginx runs Debian's nginx (one process) on a free loopback port
// with an access log of status, request time, sizes and URI, and
// locations answering 200, 301, 404 and 500.
func startNginx(t *testing.T) (addr, logFile string, pid int) { return startNginxWith(t, "", "") }

// startNginxWith is startNginx serving HTTPS with a certificate and key
// (plain HTTP without).
func startNginxWith(t *testing.T, cert, key string) (addr, logFile string, pid int) {
	t.Helper()
	nginx := lookPath(t, "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	addr = testutil.FreeAddr(t)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(strings.Repeat("vigil http page\n", 64)), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile = filepath.Join(dir, "access.log")
	listen := addr
	if cert != "" {
		listen = fmt.Sprintf("%s ssl;\n\t\tssl_certificate %s;\n\t\tssl_certificate_key %s", addr, cert, key)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
	log_format vigil '$status $request_time $request_length $bytes_sent $request_uri';
	access_log %[3]s vigil;
	sendfile off;
	keepalive_requests 100000;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		root %[1]s;
		location /redirect { return 301 /index.html; }
		location /fail { return 500; }
		location /ok { return 200 "ok\n"; }
	}
}
`, dir, listen, logFile)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	startProcess(t, cmd)
	listenAddr(t, addr)
	return addr, logFile, cmd.Process.Pid
}

func readAccessLog(t *testing.T, file string) []accessLine {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []accessLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l accessLine
		if _, err := fmt.Sscanf(sc.Text(), "%d %f %d %d %s", &l.status, &l.seconds, &l.reqLen, &l.sent, &l.uri); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// nginx answers a mix of 200, 301, 404 and 500 to curl (keep-alive and
// not) and wrk: vigil's server-side request counts per status equal the
// access log's, and every curl request's duration is within 1 ms or 20 %
// of nginx's $request_time.
func TestNginxREDMatchesAccessLog(t *testing.T) {
	nginxRED(t, "", "")
}

// nginxRED is TestNginxREDMatchesAccessLog over HTTP, or over HTTPS with
// a certificate and key (then every event must carry tls "openssl").
func nginxRED(t *testing.T, cert, key string) {
	curl := lookPath(t, "curl")
	addr, logFile, pid := startNginxWith(t, cert, key)
	r := startAgent(t, false, pid)

	base, tlsLib := "http://"+addr, ""
	if cert != "" {
		base, tlsLib = "https://"+addr, "openssl"
	}
	var keepAlive, single []string
	for i := 0; i < 8; i++ {
		keepAlive = append(keepAlive, fmt.Sprintf("%s/ok/ka%d", base, i), fmt.Sprintf("%s/missing/ka%d", base, i))
		if i%2 == 0 {
			keepAlive = append(keepAlive, fmt.Sprintf("%s/fail/ka%d", base, i), fmt.Sprintf("%s/redirect/ka%d", base, i))
		}
	}
	// Slack per request: the time nginx waited for a CPU (schedstat's run
	// delay) during the curl that carried it. nginx reads its clock once
	// per event-loop pass, and a write on loopback reaches curl before the
	// preempted nginx returns from it: time on a run queue is real for
	// vigil and invisible to $request_time.
	runDelay := func() float64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			t.Fatal(err)
		}
		var run, wait float64
		fmt.Sscan(string(b), &run, &wait)
		return wait / 1e9
	}
	slack := map[string]float64{}
	curlTimed := func(args ...string) {
		t.Helper()
		w := []string{"-sSk", "-w", "%{url_effective}\\n"}
		for range args {
			w = append(w, "-o", "/dev/null")
		}
		before := runDelay()
		out, err := exec.Command(curl, append(w, args...)...).Output()
		if err != nil {
			t.Fatalf("curl: %v %s", err, out)
		}
		waited := runDelay() - before
		for _, u := range strings.Fields(string(out)) {
			slack[strings.TrimPrefix(u, base)] = waited
		}
	}
	// One curl, one connection, many requests.
	curlTimed(keepAlive...)
	for i := 0; i < 6; i++ {
		single = append(single, fmt.Sprintf("%s/ok/one%d", base, i), fmt.Sprintf("%s/fail/one%d", base, i), fmt.Sprintf("%s/redirect/one%d", base, i), fmt.Sprintf("%s/missing/one%d", base, i))
	}
	for _, u := range single {
		curlTimed("-H", "Connection: close", u)
	}
	if wrk, err := exec.LookPath("wrk"); err == nil {
		if out, err := exec.Command(wrk, "-t", "1", "-c", "4", "-d", "1s", base+"/ok/wrk").CombinedOutput(); err != nil {
			t.Fatalf("wrk: %v %s", err, out)
		}
	} else {
		t.Log("wrk not installed: curl only")
	}

	// Lines with status 499 are requests wrk abandoned at its deadline:
	// nginx never sent a response, so there is no exchange to see.
	var lines []accessLine
	want := map[int]int{}
	for _, l := range readAccessLog(t, logFile) {
		if l.status != 499 {
			lines = append(lines, l)
			want[l.status]++
		}
	}
	if want[200] == 0 || want[301] == 0 || want[404] == 0 || want[500] == 0 {
		t.Fatalf("access log statuses %v: want all of 200, 301, 404, 500", want)
	}
	evs := r.waitEvents(len(lines), pid)
	r.noLoss()

	m := r.metrics()
	for status, n := range want {
		got := m.Value("http_server_request_duration_seconds", map[string]string{"service": "nginx", "http_response_status_code": strconv.Itoa(status)})
		if got != float64(n) {
			t.Errorf("status %d: vigil counted %v requests, the access log %d", status, got, n)
		}
	}
	if got := m.Value("http_server_request_duration_seconds", map[string]string{"service": "nginx"}); got != float64(len(lines)) {
		t.Errorf("vigil counted %v server requests, the access log %d: %v", got, len(lines), m.Series("http_server_request_duration_seconds"))
	}

	// Per request: status, sizes and duration against the access log.
	byPath := map[string]accessLine{}
	for _, l := range lines {
		if !strings.HasSuffix(l.uri, "/wrk") {
			byPath[l.uri] = l
		}
	}
	checked := 0
	const nginxQuantum = 0.001
	var maxDiff float64
	preempted := 0
	for _, e := range evs {
		if e.Side != "server" || e.Method != "GET" || e.Comm != "nginx" || e.TLS != tlsLib {
			t.Fatalf("event %+v: want nginx serving GET, tls %q", e, tlsLib)
		}
		l, ok := byPath[e.Path]
		if !ok {
			continue
		}
		checked++
		if e.Status != l.status || e.RequestBytes != l.reqLen || e.ResponseBytes != l.sent {
			t.Errorf("%s: vigil status %d, %d bytes in, %d out; nginx %d, %d, %d", e.Path, e.Status, e.RequestBytes, e.ResponseBytes, l.status, l.reqLen, l.sent)
		}
		// $request_time is the difference of two readings of nginx's cached
		// millisecond clock: it carries up to 1 ms of quantisation itself,
		// allowed on top of the 1 ms (or 20 %) tolerance.
		got := float64(e.DurationNS) / 1e9
		diff := math.Abs(got - l.seconds)
		maxDiff = max(maxDiff, diff)
		if diff > 0.001+nginxQuantum && diff > 0.2*l.seconds+nginxQuantum {
			if diff > max(0.001, 0.2*l.seconds)+nginxQuantum+slack[e.Path] {
				t.Errorf("%s: vigil %.6fs, nginx $request_time %.3fs, nginx waited %.6fs for a CPU meanwhile", e.Path, got, l.seconds, slack[e.Path])
			}
			preempted++
		}
	}
	if checked != len(byPath) {
		t.Errorf("checked %d curl requests, the access log has %d", checked, len(byPath))
	}
	t.Logf("%d requests (%d by curl): %v; largest duration difference to $request_time %.3f ms; %d beyond it, explained by nginx's run-queue wait", len(lines), checked, want, maxDiff*1e3, preempted)
}
