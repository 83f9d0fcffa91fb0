package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/server"
	"github.com/vigilproject/vigil/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = server.Listen(l.Addr().String(), "", prometheus.NewRegistry(), quiet)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()+": port already in use") {
		t.Errorf("taken port: %v", err)
	}
	_, err = server.Listen("256.1.1.1:80", "", prometheus.NewRegistry(), quiet)
	if err == nil || !strings.Contains(err.Error(), "web.listen-address 256.1.1.1:80") {
		t.Errorf("bad address: %v", err)
	}
}

func TestBadWebConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(f, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := server.Listen("127.0.0.1:0", f, prometheus.NewRegistry(), quiet)
	if err == nil || !strings.Contains(err.Error(), "web config "+f) {
		t.Errorf("bad web config: %v", err)
	}
	_, err = server.Listen("127.0.0.1:0", f+".missing", prometheus.NewRegistry(), quiet)
	if err == nil || !strings.Contains(err.Error(), f+".missing") {
		t.Errorf("missing web config: %v", err)
	}
}

// /metrics serves the registry (a counter moved by the test shows up with
// its exact value), /healthz answers ok, Shutdown stops serving.
func TestServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(41)
	c.Inc()
	s, err := server.Listen("127.0.0.1:0", "", reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	base := "http://" + s.Addr()

	m, err := testutil.Scrape(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Value("vigil_test_total", nil); v != 42 {
		t.Errorf("vigil_test_total = %v, want 42", v)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/nope: %d", resp.StatusCode)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
}
