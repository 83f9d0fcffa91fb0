package l7

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/testutil"
)

// tlsProgStats sums run time and runs of the TLS uprobe programs loaded
// after firstID (the uprobe sets' programs are not in Obj.Programs).
func tlsProgStats(tb testing.TB, firstID ebpf.ProgramID) (enter, ret time.Duration, enterRuns, retRuns uint64) {
	for id := firstID; ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := prog.Info()
		st, serr := prog.Stats()
		prog.Close()
		if err != nil || serr != nil {
			continue
		}
		rt, n := st.Runtime, st.RunCount
		switch {
		case info.Name == opensslReturn:
			ret, retRuns = ret+rt, retRuns+n
		case strings.HasPrefix(info.Name, "ssl_") && strings.Contains(info.Name, "_en"):
			enter, enterRuns = enter+rt, enterRuns+n
		}
	}
	return
}

func lastProgID(tb testing.TB) ebpf.ProgramID {
	var last ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(last)
		if err != nil {
			return last
		}
		last = next
	}
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// BenchmarkOpenSSLNginx: wrk asks nginx (HTTPS, keep-alive, 1 KB page)
// for 3 s without the probe and with it (nginx's pid followed); it reports
// requests/s and, with the probe, the BPF time of the TLS programs per
// SSL call and of all the probe's programs per request. Run with
// -benchtime 1x.
func BenchmarkOpenSSLNginx(b *testing.B) {
	nginx, err := exec.LookPath("/usr/sbin/nginx")
	if err != nil {
		b.Skip("nginx not installed")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk not installed")
	}
	dir := b.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		b.Fatalf("openssl: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(strings.Repeat("x", 1023)+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	port := 20000 + os.Getpid()%20000
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
	access_log off;
	sendfile off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server { listen 127.0.0.1:%[2]d ssl; ssl_certificate %[3]s; ssl_certificate_key %[4]s; root %[1]s; keepalive_requests 1000000; }
}
`, dir, port, cert, key)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	run := func() float64 {
		out, err := exec.Command(wrk, "-t1", "-c4", "-d3s", fmt.Sprintf("https://127.0.0.1:%d/index.html", port)).CombinedOutput()
		m := wrkRate.FindSubmatch(out)
		if err != nil || m == nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		r, _ := strconv.ParseFloat(string(m[1]), 64)
		return r
	}
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var p *Probe
			var first ebpf.ProgramID
			if on {
				stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
				testutil.SkipIfNotPermitted(b, err)
				defer stats.Close()
				first = lastProgID(b)
				cfg := DefaultConfig()
				cfg.PIDs = []uint32{uint32(cmd.Process.Pid)}
				p, _ = startProbe(b, cfg)
			}
			for b.Loop() {
				var d0 time.Duration
				var r0, t0 uint64
				if p != nil {
					d0, _ = bpfTime(b, p, "")
					_, _, _, r0 = tlsProgStats(b, first)
					tc, _ := p.ReadTLSCounters()
					t0 = tc.Records
				}
				rate := run()
				b.ReportMetric(rate, "req/s")
				if p != nil {
					d, _ := bpfTime(b, p, "")
					enter, ret, en, rn := tlsProgStats(b, first)
					tc, _ := p.ReadTLSCounters()
					reqs := rate * 3
					b.ReportMetric(float64(enter)/float64(en), "enter-ns/ssl-call")
					b.ReportMetric(float64(ret)/float64(rn), "return-ns/ssl-call")
					b.ReportMetric(float64(rn-r0)/reqs, "ssl-calls/req")
					b.ReportMetric(float64(tc.Records-t0)/reqs, "tls-records/req")
					b.ReportMetric(float64(d-d0+enter+ret)/reqs, "bpf-ns/req")
				}
			}
		})
	}
}

// BenchmarkDiscovery is the cost of the process discovery with the
// OpenSSL search plugged in, on this machine's processes: "cold" is the
// start scan reading every candidate file's symbols again (attaches
// already made), "warm" the same with each file known (maps read only),
// "periodic" a rescan that finds no new process (a /proc listing).
func BenchmarkDiscovery(b *testing.B) {
	p, _ := startProbe(b, DefaultConfig())
	procs := float64(len(p.disc.list()))
	for _, c := range []struct {
		name    string
		initial bool
		cold    bool
	}{{"cold", true, true}, {"warm", true, false}, {"periodic", false, false}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if c.cold {
					p.openssl.mu.Lock()
					clear(p.openssl.inspected)
					p.openssl.mu.Unlock()
				}
				p.disc.scan(c.initial)
			}
			b.ReportMetric(procs, "processes")
			if c.initial {
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/procs, "µs/process")
			}
		})
	}
}

// pyMemoryBIO times SSL_write_ex + SSL_read_ex round trips between two
// SSL objects over memory BIOs (no syscall: the library calls alone) and
// prints the mean CPU nanoseconds of one round trip (user + system: the
// uprobe traps are the process's system time). It starts after a line on
// stdin.
const pyMemoryBIO = `
import ssl, sys, time
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(sys.argv[1], sys.argv[2])
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
c = cctx.wrap_bio(ci, co)
s = sctx.wrap_bio(si, so, server_side=True)
for _ in range(10):
    for o in (c, s):
        try:
            o.do_handshake()
        except ssl.SSLWantReadError:
            pass
    si.write(co.read()); ci.write(so.read())
sys.stdin.readline()
n = int(sys.argv[3])
msg = b"x" * 64
t = time.process_time_ns()
for _ in range(n):
    c.write(msg)
    si.write(co.read())
    s.read(64)
print((time.process_time_ns() - t) // n, flush=True)
`

// BenchmarkOpenSSLCall is the cost the uprobes add to a TLS library call
// in a process: memory-BIO round trips (SSL_write_ex + SSL_read_ex) in
// CPython, without the probe and with it (the process followed: each call
// runs both programs, and counts as on an unknown connection). Run with
// -benchtime 1x.
func BenchmarkOpenSSLCall(b *testing.B) {
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		b.Skip("python3 not installed")
	}
	dir := b.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		b.Fatalf("openssl: %v\n%s", err, out)
	}
	const rounds = 50000
	measure := func(on bool) float64 {
		cmd := exec.Command(python, "-c", pyMemoryBIO, cert, key, strconv.Itoa(rounds))
		in, _ := cmd.StdinPipe()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if on {
			cfg := DefaultConfig()
			cfg.PIDs = []uint32{uint32(cmd.Process.Pid)}
			p, _ := startProbe(b, cfg)
			defer p.Close()
		}
		_, _ = in.Write([]byte("go\n"))
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
		if err != nil {
			b.Fatalf("python printed %q", out.String())
		}
		return ns
	}
	for b.Loop() {
		off1, on1, off2, on2 := measure(false), measure(true), measure(false), measure(true)
		b.ReportMetric((off1+off2)/2, "off-cpu-ns/round-trip")
		b.ReportMetric((on1+on2)/2, "on-cpu-ns/round-trip")
		b.ReportMetric((on1+on2-off1-off2)/4, "added-cpu-ns/ssl-call")
	}
}
