package httpflow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	_ "github.com/vigilproject/vigil/internal/probe/all" // the kinds the embedded pack names
	"github.com/vigilproject/vigil/internal/probe/l7"
	"github.com/vigilproject/vigil/internal/testutil"
)

// alerts records what the event rules fire.
type alerts struct {
	mu  sync.Mutex
	all []alert.Alert
}

func (a *alerts) Send(_ string, as []alert.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = append(a.all, as...)
}

func (a *alerts) named(name string) []alert.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []alert.Alert
	for _, x := range a.all {
		if x.Labels["alertname"] == name {
			out = append(out, x)
		}
	}
	return out
}

// packConfig is the default config (embedded rule pack on) with l7 as
// given and everything else off.
func packConfig(t *testing.T, l7On bool) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf("probes:\n  l7:\n    enabled: %v\nrules:\n  enabled: false\nevent_rules:\n  watch_interval: 0s\n", l7On)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Alerting.StateFile = filepath.Join(t.TempDir(), "alerts.json")
	return cfg
}

// The pack's http rules do not switch the l7 probe on by themselves.
func TestPackLeavesL7Off(t *testing.T) {
	a, err := agent.Open(packConfig(t, false), slog.New(slog.NewTextHandler(io.Discard, nil)), agent.Options{EventRules: true})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(a.Names(), l7.Name) || a.HTTP != nil {
		t.Fatalf("probes %v: l7 switched on by the embedded http rules", a.Names())
	}
	a2, err := agent.Open(packConfig(t, true), slog.New(slog.NewTextHandler(io.Discard, nil)), agent.Options{EventRules: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a2.Names(), l7.Name) || a2.HTTP == nil {
		t.Fatalf("probes %v with probes.l7.enabled: no l7", a2.Names())
	}
}

// The embedded pack on real requests: ten 5xx answers of nginx within 30 s
// fire HTTPServerErrorBurst once for service nginx (nine do not), and curl
// asking 169.254.169.254 (on loopback in a network namespace) fires
// MetadataServiceRequest.
func TestPackHTTPRules(t *testing.T) {
	testutil.RequireBPF(t)
	curl := lookPath(t, "curl")
	py := lookPath(t, "python3")
	addr, _, _ := startNginx(t)
	rec := &alerts{}
	a, err := agent.Open(packConfig(t, true), slog.New(slog.NewTextHandler(io.Discard, nil)),
		agent.Options{Probes: []string{l7.Name}, EventRules: true, AlertSink: rec})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Main(func(ctx context.Context) error {
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		})
	}()
	t.Cleanup(func() { close(stop); <-done })
	if !testutil.WaitFor(30*time.Second, func() bool { return a.Bus.Wants(l7.KindConnData) || len(done) > 0 }) {
		m, _ := testutil.Gather(a.Registry)
		t.Fatalf("the http rules did not make the deriver consume conn_data (http wanted %v, running %v, queues %v)",
			a.Bus.Wants("http"), m.Series("vigil_derive_running"), m.Series("vigil_event_queue_capacity"))
	}
	if len(done) > 0 {
		t.Fatalf("agent: %v", <-done)
	}

	get := func(paths ...string) {
		t.Helper()
		var urls []string
		for _, p := range paths {
			urls = append(urls, "http://"+addr+p)
		}
		if out, err := exec.Command(curl, append([]string{"-sS", "-o", "/dev/null"}, urls...)...).CombinedOutput(); err != nil {
			t.Fatalf("curl: %v %s", err, out)
		}
	}
	var fails []string
	for i := 0; i < 9; i++ {
		fails = append(fails, fmt.Sprintf("/fail/%d", i))
	}
	get(append(fails, "/ok/1", "/missing/1")...)
	time.Sleep(2 * time.Second)
	if got := rec.named("HTTPServerErrorBurst"); len(got) != 0 {
		t.Fatalf("fired after nine 5xx: %+v", got)
	}
	get("/fail/9", "/fail/10")
	if !testutil.WaitFor(30*time.Second, func() bool { return len(rec.named("HTTPServerErrorBurst")) > 0 }) {
		m, _ := testutil.Gather(a.Registry)
		t.Fatalf("HTTPServerErrorBurst did not fire after eleven 5xx: produced %v, matches %v, dropped %v, alerts %v",
			m.Series("vigil_derive_events_produced_total"), m.Value("vigil_event_rule_matches_total", map[string]string{"rule": "HTTPServerErrorBurst"}),
			m.Series("vigil_event_queue_dropped_total"), len(rec.all))
	}
	time.Sleep(time.Second)
	got := rec.named("HTTPServerErrorBurst")
	if len(got) != 1 || got[0].Annotations["group"] != "nginx" {
		t.Errorf("alerts %+v, want one for service nginx", got)
	}
	if n := len(rec.named("MetadataServiceRequest")); n != 0 {
		t.Fatalf("metadata rule fired on loopback requests: %d", n)
	}

	// The metadata address, served on loopback in a network namespace.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "latest", "meta-data"), 0o755)
	os.WriteFile(filepath.Join(dir, "latest", "meta-data", "iam"), []byte("role\n"), 0o644)
	script := fmt.Sprintf(`set -e
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
%s -m http.server 80 --bind 169.254.169.254 --directory %s 2>/dev/null &
%s -c 'import socket, time
for i in range(100):
    try:
        socket.create_connection(("169.254.169.254", 80)).close()
        break
    except OSError:
        time.sleep(0.1)'
%s -sS http://169.254.169.254/latest/meta-data/iam
kill $!`, py, dir, py, curl)
	if out, err := exec.Command("unshare", "-n", "sh", "-c", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "role") {
		t.Fatalf("metadata request in a network namespace: %v %s", err, out)
	}
	if !testutil.WaitFor(30*time.Second, func() bool { return len(rec.named("MetadataServiceRequest")) > 0 }) {
		t.Fatal("MetadataServiceRequest did not fire")
	}
	m := rec.named("MetadataServiceRequest")[0]
	if m.Labels["severity"] != "warning" || m.Annotations["comm"] != "curl" || !strings.Contains(m.Annotations["summary"], "GET /latest/meta-data/iam -> 200") {
		t.Errorf("alert %+v", m)
	}
}
