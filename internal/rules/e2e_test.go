package rules

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/alert/alerttest"
)

// TestAgentEndToEnd runs the real `vigil run` binary with the process probe,
// causes real exec activity, and checks that the alert reaches a real
// Alertmanager within interval + for + a few seconds, resolves after the
// activity stops, and that a real Prometheus scraping the agent with the
// same rule file raises the same alert.
func TestAgentEndToEnd(t *testing.T) {
	t.Parallel() // mostly waiting on timers and peers
	if testing.Short() {
		t.Skip("-short: skipping end-to-end test")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end test needs root to load the process probe's BPF programs")
	}
	am := alerttest.Start(t)
	dir := t.TempDir()
	bin := buildVigil(t, dir)

	// A private copy of true(1) with a unique name isolates the test's
	// execs from whatever else runs on the machine.
	trueBin := filepath.Join(dir, "vigil-e2e-true")
	src, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(src); err != nil || os.WriteFile(trueBin, b, 0o755) != nil {
		t.Fatalf("copying %s: %v", src, err)
	}

	ruleFile := writeFile(t, filepath.Join(dir, "e2e.yml"), `groups:
- name: e2e
  interval: 1s
  rules:
  - alert: E2EExecBurst
    expr: sum by (executable) (rate(vigil_process_execs_total{executable="vigil-e2e-true"}[5s])) > 5
    for: 2s
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.executable }} runs too often on {{ $externalLabels.host }}'
`)
	port := alerttest.FreePort(t)
	cfg := writeFile(t, filepath.Join(dir, "vigil.yml"), fmt.Sprintf(`web:
  listen_address: 127.0.0.1:%d
metrics:
  label_limit: 10000
rules:
  builtin: false
  files: [%q]
  data_dir: %q
  evaluation_interval: 1s
  feed_interval: 1s
  resend_delay: 2s
alerting:
  host: e2e-host
  alertmanagers: [{url: %q}]
  state_file: %q
`, port, ruleFile, filepath.Join(dir, "tsdb"), am.URL, filepath.Join(dir, "alerts.json")))
	logf, _ := os.Create(filepath.Join(dir, "vigil.log"))
	defer logf.Close()
	agent := exec.Command(bin, "run", "-c", cfg)
	agent.Stdout, agent.Stderr = logf, logf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Signal(os.Interrupt); agent.Wait() }() //nolint:errcheck
	vigilURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, "vigil /healthz", 30*time.Second, func() bool { return httpOK(vigilURL + "/healthz") })

	promURL := startPrometheus(t, dir, ruleFile, fmt.Sprintf("127.0.0.1:%d", port), "e2e-host")

	stop := execLoop(t, trueBin, 30)
	got, took, ok := am.WaitFiring("E2EExecBurst", 20*time.Second)
	if !ok {
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "vigil.log"))
		t.Fatalf("E2EExecBurst never reached Alertmanager; vigil log:\n%s", log)
	}
	t.Logf("real execs start → firing in Alertmanager: %v (feed 1s, interval 1s, for 2s)", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("latency %v exceeds interval + for + a few seconds", took)
	}
	if got.Labels["host"] != "e2e-host" || got.Labels["executable"] != "vigil-e2e-true" {
		t.Errorf("labels %v", got.Labels)
	}

	var edge, central *APIAlert
	waitUntil(t, "the same alert in Prometheus", 20*time.Second, func() bool {
		edge = firingAlert(getAlerts(t, vigilURL), "E2EExecBurst")
		central = firingAlert(getAlerts(t, promURL), "E2EExecBurst")
		return edge != nil && central != nil
	})
	if !maps.Equal(edge.Labels, central.Labels) || !maps.Equal(edge.Annotations, central.Annotations) {
		t.Errorf("edge %v %v, Prometheus %v %v", edge.Labels, edge.Annotations, central.Labels, central.Annotations)
	}

	stop()
	took, ok = am.WaitResolved("E2EExecBurst", 30*time.Second)
	if !ok {
		t.Fatal("E2EExecBurst never resolved in Alertmanager")
	}
	t.Logf("real execs stop → resolved in Alertmanager: %v (rate window 5s)", took.Round(10*time.Millisecond))
}

// buildVigil compiles cmd/vigil into dir.
func buildVigil(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "vigil")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vigil: %v\n%s", err, out)
	}
	return bin
}

// execLoop runs bin perSecond times a second until stopped.
func execLoop(t *testing.T, bin string, perSecond int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if err := exec.Command(bin).Run(); err != nil {
					t.Errorf("exec %s: %v", bin, err)
					return
				}
			}
		}
	}()
	return func() {
		select {
		case <-done:
		default:
			close(done)
		}
		<-finished
	}
}

// startPrometheus runs the Debian prometheus scraping target every second
// with ruleFile, and returns its URL; it skips if prometheus is missing.
func startPrometheus(t *testing.T, dir, ruleFile, target, host string) string {
	t.Helper()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed: install the Debian package prometheus to run this test")
	}
	port := alerttest.FreePort(t)
	cfgFile := writeFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    host: %s
rule_files: [%q]
scrape_configs:
- job_name: vigil
  static_configs:
  - targets: [%q]
`, host, ruleFile, target))
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd := exec.Command(promBin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() }) //nolint:errcheck
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, "Prometheus ready", 30*time.Second, func() bool { return httpOK(u + "/-/ready") })
	return u
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}
