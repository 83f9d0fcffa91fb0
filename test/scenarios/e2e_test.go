package scenarios

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const alertmanagerBin = "/usr/bin/prometheus-alertmanager"

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(t *testing.T, u string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %v", u, d)
}

// startAlertmanager runs a real Alertmanager on a free loopback port with
// its own storage directory.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(alertmanagerBin); err != nil {
		t.Skipf("needs %s (Debian package prometheus-alertmanager)", alertmanagerBin)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: devnull\n  group_wait: 1h\nreceivers:\n  - name: devnull\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(alertmanagerBin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, base+"/-/ready", 15*time.Second)
	return base
}

// buildVigil builds the agent binary.
func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
}

func amAlerts(base, alertname string) ([]amAlert, error) {
	resp, err := http.Get(base + "/api/v2/alerts?filter=" + url.QueryEscape(`alertname="`+alertname+`"`))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []amAlert
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// TestAgentToAlertmanager runs the built agent with the default rule pack
// against a real Alertmanager: scenario alerts must arrive in Alertmanager's
// API, and the time from the kernel event to the alert being visible there
// is measured.
func TestAgentToAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel scenario test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("the agent loads BPF programs: run as root")
	}
	am := startAlertmanager(t)
	bin := buildVigil(t)

	rules := filepath.Join(repoRoot(), "deploy", "rules", "events", "*.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	web := "127.0.0.1:" + strconv.Itoa(freePort(t))
	// Own state paths, and no metric rules: this test is about event rules.
	state := t.TempDir()
	cfgFile := filepath.Join(state, "vigil.yaml")
	cfgYAML := fmt.Sprintf("rules:\n  enabled: false\nalerting:\n  state_file: %s\n", filepath.Join(state, "alerts.json"))
	if err := os.WriteFile(cfgFile, []byte(cfgYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--config="+cfgFile, "--web.listen-address="+web,
		"--event-rules.file="+rules, "--alertmanager.url="+am, "--log.level=info")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
				t.Log("vigil: " + line)
			}
			if !once && strings.Contains(line, "vigil started") {
				once = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("vigil did not start within 30s")
	}

	r, err := NewRunner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	t.Run("sequence alert arrives", func(t *testing.T) {
		s, err := Load(filepath.Join(repoRoot(), "test", "scenarios", "cases", "read-then-connect.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Do(s); err != nil {
			t.Fatal(err)
		}
		pid := strconv.Itoa(r.PIDs["exfil"])
		deadline := time.Now().Add(5 * time.Second)
		for {
			alerts, err := amAlerts(am, "SensitiveReadThenConnect")
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(alerts, func(a amAlert) bool { return a.Annotations["pid"] == pid })
			if i >= 0 {
				a := alerts[i]
				if a.Labels["severity"] != "critical" || a.Labels["rule"] != "SensitiveReadThenConnect" || a.Labels["host"] == "" {
					t.Errorf("labels = %v", a.Labels)
				}
				if !strings.Contains(a.Annotations["summary"], "read /etc/shadow then connected to "+r.HostIP) {
					t.Errorf("summary = %q", a.Annotations["summary"])
				}
				return
			}
			if time.Now().After(deadline) {
				logMetrics(t, "http://"+web+"/metrics")
				t.Fatalf("no SensitiveReadThenConnect alert for pid %s in Alertmanager after 5s", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("event to Alertmanager latency", func(t *testing.T) {
		const n = 40
		var lat []time.Duration
		for i := range n {
			path := fmt.Sprintf("/tmp/vigil-e2e-%s-%d", r.Token, i)
			if err := copyFile("/bin/true", path, 0o755); err != nil {
				t.Fatal(err)
			}
			c := exec.Command(path)
			if err := c.Run(); err != nil {
				t.Fatal(err)
			}
			os.Remove(path)
			pid := strconv.Itoa(c.Process.Pid)
			deadline := time.Now().Add(5 * time.Second)
			for {
				alerts, err := amAlerts(am, "ExecFromTempOrMemory")
				if err != nil {
					t.Fatal(err)
				}
				seen := time.Now()
				if i := slices.IndexFunc(alerts, func(a amAlert) bool { return a.Annotations["pid"] == pid }); i >= 0 {
					lat = append(lat, seen.Sub(alerts[i].StartsAt))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("exec %d (pid %s): no alert in Alertmanager after 5s", i, pid)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
		t.Logf("event-to-Alertmanager latency over %d alerts: p50 %v, p90 %v, p99 %v, max %v (polling every 5ms)",
			n, p(0.5).Round(time.Millisecond), p(0.9).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		if p(0.99) >= time.Second {
			t.Errorf("p99 latency %v is over the 1s target", p(0.99))
		}
	})
}

// logMetrics logs the agent's rule-engine and loss counters, to tell a lost
// event from a rule that did not match.
func logMetrics(t *testing.T, u string) {
	resp, err := http.Get(u)
	if err != nil {
		t.Log(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "#") && (strings.Contains(l, "event_rule") || strings.Contains(l, "sequence") ||
			strings.Contains(l, "dropped") || strings.Contains(l, "lost") || strings.Contains(l, "notification")) {
			t.Log(l)
		}
	}
}
