// Package alerttest runs a real Alertmanager (Debian package
// prometheus-alertmanager) for tests. Tests skip with a clear message when
// the binary is not installed.
package alerttest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Binaries tried, in order: Debian names first, upstream name second.
var binaries = []string{"prometheus-alertmanager", "alertmanager"}

// Alertmanager is a running Alertmanager on a loopback port.
type Alertmanager struct {
	t       testing.TB
	bin     string
	dir     string
	Port    int
	URL     string
	cmd     *exec.Cmd
	logFile string
}

// Alert is the subset of Alertmanager's gettableAlert that tests use.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// Start launches Alertmanager with a temporary storage dir and a route that
// groups with 1s waits, or skips the test if it is not installed.
func Start(t testing.TB) *Alertmanager {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test with a real Alertmanager")
	}
	var bin string
	for _, b := range binaries {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("Alertmanager not installed: install the Debian package prometheus-alertmanager to run this test")
	}
	dir := t.TempDir()
	cfg := `route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: blackhole
`
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	am := &Alertmanager{t: t, bin: bin, dir: dir, Port: FreePort(t)}
	am.URL = fmt.Sprintf("http://127.0.0.1:%d", am.Port)
	am.logFile = filepath.Join(dir, "am.log")
	am.Restart()
	t.Cleanup(am.Stop)
	return am
}

// Restart starts the process again (same port, same storage) after Stop.
func (am *Alertmanager) Restart() {
	am.t.Helper()
	logf, err := os.OpenFile(am.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		am.t.Fatal(err)
	}
	am.cmd = exec.Command(am.bin,
		"--config.file="+filepath.Join(am.dir, "am.yml"),
		"--storage.path="+filepath.Join(am.dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(am.Port),
		"--cluster.listen-address=", // no gossip port
	)
	am.cmd.Stdout, am.cmd.Stderr = logf, logf
	if err := am.cmd.Start(); err != nil {
		am.t.Fatalf("starting %s: %v", am.bin, err)
	}
	logf.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(am.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(am.logFile)
	am.t.Fatalf("Alertmanager did not become ready on %s; log:\n%s", am.URL, log)
}

// Stop kills the process and waits for it.
func (am *Alertmanager) Stop() {
	if am.cmd == nil || am.cmd.Process == nil {
		return
	}
	am.cmd.Process.Kill() //nolint:errcheck
	am.cmd.Wait()         //nolint:errcheck
	am.cmd = nil
}

// Alerts returns all alerts Alertmanager holds (GET /api/v2/alerts).
func (am *Alertmanager) Alerts() ([]Alert, error) {
	resp, err := http.Get(am.URL + "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /api/v2/alerts: %s", resp.Status)
	}
	var out []Alert
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Find returns the alert with the given alertname, if Alertmanager has it.
func (am *Alertmanager) Find(alertname string) (Alert, bool) {
	as, err := am.Alerts()
	if err != nil {
		return Alert{}, false
	}
	for _, a := range as {
		if a.Labels["alertname"] == alertname {
			return a, true
		}
	}
	return Alert{}, false
}

// WaitFiring polls until alertname is active, and returns it with the time
// it took.
func (am *Alertmanager) WaitFiring(alertname string, timeout time.Duration) (Alert, time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		if a, ok := am.Find(alertname); ok && a.EndsAt.After(time.Now()) {
			return a, time.Since(start), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return Alert{}, time.Since(start), false
}

// WaitResolved polls until alertname is gone or has ended.
func (am *Alertmanager) WaitResolved(alertname string, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		a, ok := am.Find(alertname)
		if !ok || !a.EndsAt.After(time.Now()) {
			return time.Since(start), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), false
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
