package l7_test

// Config file errors name the file and line. An external test package:
// the config package links the http deriver, which imports this one.

import (
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/probe/l7"
)

func TestConfigFileErrors(t *testing.T) {
	for _, c := range []struct{ yaml, err string }{
		{"max_capture_bytes: 5000", "mine.yaml: line 3: probes.l7.max_capture_bytes: 5000 is more than 4096"},
		{"max_connections: 4", "mine.yaml: line 3: probes.l7.max_connections: 4 must be between 16 and 4194304"},
		{"ringbuf_size: 5000", "mine.yaml: line 3: probes.l7.ringbuf_size: 5000 is not a power of two of at least 4096"},
		{"pids: [0]", "mine.yaml: line 3: probes.l7.pids: 0 is not a process id"},
	} {
		_, err := config.Parse([]byte("probes:\n  l7:\n    "+c.yaml+"\n"), "mine.yaml")
		if err == nil || err.Error() != c.err {
			t.Errorf("%s: error %v, want %s", c.yaml, err, c.err)
		}
	}
}

func TestTLSConfigFile(t *testing.T) {
	for _, c := range []struct{ yaml, err string }{
		{"tls:\n      rescan_interval: 10ms", "mine.yaml: line 3: probes.l7.tls.rescan_interval: 10ms must be between 500ms and 1m"},
		{"tls:\n      max_binaries: 0", "mine.yaml: line 3: probes.l7.tls.max_binaries: 0 must be between 1 and 1024"},
		{"tls:\n      rescan_interval: soon", "mine.yaml: line 4: probes.l7.tls.rescan_interval: cannot unmarshal !!str `soon` into time.Duration"},
		{"tls:\n      boringssl: true", `mine.yaml: line 4: unknown key "boringssl" in probes.l7.tls (known: go, max_binaries, openssl, rescan_interval)`},
	} {
		_, err := config.Parse([]byte("probes:\n  l7:\n    "+c.yaml+"\n"), "mine.yaml")
		if err == nil || err.Error() != c.err {
			t.Errorf("%q: error %v, want %s", c.yaml, err, c.err)
		}
	}
	cfg, err := config.Parse([]byte("probes:\n  l7:\n    tls:\n      openssl: false\n      go: false\n      rescan_interval: 5s\n"), "mine.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ProbeConfigs[l7.Name].(*l7.Config).TLS; got != (l7.TLSConfig{OpenSSL: false, RescanInterval: 5 * time.Second, MaxBinaries: 64}) {
		t.Errorf("decoded %+v", got)
	}
}
