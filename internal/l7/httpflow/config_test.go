package httpflow_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/config"
)

// l7.http in a config file: defaults, overrides, and errors naming the
// file, line and key.
func TestConfigSection(t *testing.T) {
	cfg, err := config.Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.L7.HTTP
	if !h.Enabled || h.MaxStreams != 16384 || h.IdleTimeout != time.Minute || h.MaxRoutesPerService != 100 || h.MaxSeries != 2000 ||
		len(h.Headers) != 0 || h.QueueSize != 16384 {
		t.Fatalf("defaults %+v", h)
	}
	cfg, err = config.Parse([]byte("l7:\n  http:\n    idle_timeout: 5s\n    headers: [User-Agent]\n"), "ok.yaml")
	if err != nil || cfg.L7.HTTP.IdleTimeout != 5*time.Second || cfg.L7.HTTP.Headers[0] != "User-Agent" || cfg.L7.HTTP.MaxStreams != 16384 {
		t.Fatalf("override: %v %+v", err, cfg.L7.HTTP)
	}
	for _, c := range []struct{ yaml, want string }{
		{"l7:\n  http:\n    max_streams: 3\n", "bad.yaml: line 3: l7.http.max_streams: 3 must be between 16 and 4194304"},
		{"l7:\n  http:\n    headers: [user-agent, Authorization]\n", `bad.yaml: line 3: l7.http.headers: "Authorization" carries credentials`},
		{"l7:\n  http:\n    idle_timeout: 0s\n", "bad.yaml: line 3: l7.http.idle_timeout: 0s must be between 1s and 1h"},
		{"l7:\n  http:\n    max_stream: 10\n", `line 3: unknown key "max_stream"`},
	} {
		_, err := config.Parse([]byte(c.yaml), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
}
