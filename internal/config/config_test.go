package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/config"
	_ "github.com/vigilproject/vigil/internal/probe/all" // every probe's section is in the default config
	"github.com/vigilproject/vigil/internal/probe/open"
	"github.com/vigilproject/vigil/internal/probe/process"
)

// Every bad input must come back as one message naming the file and the
// line a user has to fix.
func TestErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "log:\n  level: info\nlogg:\n  level: debug\n",
			[]string{"bad.yaml", "line 3", `unknown key "logg"`, "known: alerting, event_rules, kernel, l7, log, metrics, probes, process_cache, rules, web"}},
		{"unknown nested key", "web:\n  listen_address: 127.0.0.1:1\n  listen: x\n",
			[]string{"bad.yaml", "line 3", `unknown key "listen" in web`}},
		{"unknown probe key", "probes:\n  process:\n    max_args: 10\n    ringbuf: 4096\n",
			[]string{"bad.yaml", "line 4", `unknown key "ringbuf" in probes.process`, "ringbuf_size"}},
		{"unknown probe", "probes:\n  proces:\n    enabled: true\n",
			[]string{"bad.yaml", "line 2", `unknown probe "proces"`, "process"}},
		{"wrong type", "metrics:\n  label_limit: lots\n",
			[]string{"bad.yaml", "line 2", "lots"}},
		{"wrong type in probe", "probes:\n  process:\n    enabled: true\n    max_args: many\n",
			[]string{"bad.yaml", "line 4", "many"}},
		{"list for a mapping", "kernel: [tp_btf]\n",
			[]string{"bad.yaml", "line 1", "kernel must be a mapping"}},
		{"syntax error", "log:\n  level: [info\n",
			[]string{"bad.yaml", "line"}},
		{"bad value", "log:\n  format: logfmt\n  level: loud\n",
			[]string{"bad.yaml", "line 3", "log.level", `"loud"`}},
		{"bad hook", "kernel:\n  disabled_hooks: [tp_btf, kprob]\n",
			[]string{"bad.yaml", "line 2", `unknown hook kind "kprob"`}},
		{"bad probe value", "probes:\n  process:\n    max_args: 10\n    ringbuf_size: 5000\n",
			[]string{"bad.yaml", "line 4", "probes.process.ringbuf_size", "5000", "power of two"}},
		{"bad probe value first key", "probes:\n  process:\n    max_args_bytes: 9000\n",
			[]string{"bad.yaml", "line 3", "max_args_bytes", "9000"}},
		{"bad cache bound", "process_cache:\n  max_entries: 5\n",
			[]string{"bad.yaml", "line 2", "process_cache.max_entries"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(c.yaml), "bad.yaml")
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n"); n > 0 {
				t.Errorf("one mistake, %d lines of error: %q", n+1, err)
			}
		})
	}
}

// Several independent bad values are all reported, each with its line.
func TestSeveralErrors(t *testing.T) {
	_, err := config.Parse([]byte("log:\n  level: loud\n  format: xml\nmetrics:\n  label_limit: 0\n"), "bad.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"bad.yaml: line 2: log.level", "bad.yaml: line 3: log.format", "bad.yaml: line 5: metrics.label_limit"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// The embedded default is valid and matches the probes' code defaults.
func TestDefaults(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Web.ListenAddress != config.DefaultListenAddress || cfg.Log.Level != "info" || cfg.Log.Format != "logfmt" ||
		!cfg.Kernel.BPFStats || len(cfg.Kernel.DisabledHooks) != 0 || cfg.Metrics.LabelLimit != 100 || cfg.ProcessCache.MaxEntries != 32768 {
		t.Errorf("defaults %+v", cfg)
	}
	if got := cfg.ProbeConfigs[process.Name]; !reflect.DeepEqual(got, process.DefaultConfig()) {
		t.Errorf("default.yaml process section %+v differs from process.DefaultConfig() %+v", got, process.DefaultConfig())
	}
	if !slices.Contains(cfg.EnabledProbes(), process.Name) {
		t.Errorf("process probe not enabled by default: %v", cfg.EnabledProbes())
	}
}

// A file overrides only the keys it sets; the rest keep the defaults.
func TestLayering(t *testing.T) {
	def := process.DefaultConfig()
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *config.Config)
	}{
		{"empty file", "", func(t *testing.T, c *config.Config) {
			d, _ := config.Default()
			d.Source = c.Source
			if !reflect.DeepEqual(c.ProbeConfigs, d.ProbeConfigs) || c.Log != d.Log || c.Web != d.Web || c.Metrics != d.Metrics {
				t.Errorf("empty file differs from defaults")
			}
		}},
		{"comments only", "# nothing\n", func(t *testing.T, c *config.Config) {
			if c.Log.Level != "info" {
				t.Errorf("log.level %q", c.Log.Level)
			}
		}},
		{"one probe key", "probes:\n  process:\n    max_args: 10\n", func(t *testing.T, c *config.Config) {
			p := c.ProbeConfigs[process.Name].(*process.Config)
			want := *def
			want.MaxArgs = 10
			if *p != want {
				t.Errorf("process config %+v, want %+v", *p, want)
			}
		}},
		{"empty probe section", "probes:\n  process:\n", func(t *testing.T, c *config.Config) {
			if p := c.ProbeConfigs[process.Name].(*process.Config); *p != *def {
				t.Errorf("process config %+v, want defaults", *p)
			}
		}},
		{"disable probe", "probes:\n  process:\n    enabled: false\n", func(t *testing.T, c *config.Config) {
			if slices.Contains(c.EnabledProbes(), process.Name) {
				t.Error("process still enabled")
			}
		}},
		{"one nested key", "log:\n  level: debug\nweb:\n  listen_address: 127.0.0.1:1\n", func(t *testing.T, c *config.Config) {
			if c.Log.Level != "debug" || c.Log.Format != "logfmt" || c.Web.ListenAddress != "127.0.0.1:1" || c.Web.ConfigFile != "" {
				t.Errorf("log %+v web %+v", c.Log, c.Web)
			}
		}},
		{"list replaces", "kernel:\n  disabled_hooks: [tp_btf]\n", func(t *testing.T, c *config.Config) {
			if !slices.Equal(c.Kernel.DisabledHooks, []string{"tp_btf"}) || !c.Kernel.BPFStats {
				t.Errorf("kernel %+v", c.Kernel)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(c.yaml), "layer.yaml")
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

// Parsing the same file twice gives independent configs: probe sections are
// not shared between Parse calls.
func TestParseIndependent(t *testing.T) {
	a, err := config.Parse([]byte("probes:\n  process:\n    max_args: 7\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.Parse(nil, "b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a.ProbeConfigs[process.Name].(*process.Config).MaxArgs != 7 || b.ProbeConfigs[process.Name].(*process.Config).MaxArgs != 64 {
		t.Error("probe configs leak between Parse calls")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := config.Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := config.Load(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  levle: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(bad); err == nil || !strings.Contains(err.Error(), bad+": line 2") {
		t.Errorf("bad file: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, config.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(good)
	if err != nil || cfg.Source != good {
		t.Errorf("default config as a file: %v", err)
	}
}

// Two wrong types in one file: two lines, each with file, line and key.
func TestSeveralTypeErrors(t *testing.T) {
	_, err := config.Parse([]byte("probes:\n  process:\n    forks: maybe\n    max_args: x\n"), "bad.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"bad.yaml: line 3: probes.process.forks: cannot unmarshal !!str `maybe` into bool",
		"bad.yaml: line 4: probes.process.max_args: cannot unmarshal !!str `x` into int",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("error lines %q, want %q", lines, want)
	}
}

// A knob whose default follows another knob follows it: a file that sets
// only the open probe's ring size gets a wakeup threshold derived from that
// size, not the embedded default computed for the embedded size.
func TestDerivedDefaultFollowsTheKnob(t *testing.T) {
	file := "# a small ring for a small host\nprobes:\n  open:\n    ringbuf_size: 4096\n"
	cfg, err := config.Parse([]byte(file), "small.yaml")
	if err != nil {
		t.Fatalf("a file that sets only ringbuf_size: %v", err)
	}
	got := cfg.ProbeConfigs[open.Name].(*open.Config)
	if got.RingbufSize != 4096 || got.RingbufWakeupBytes != open.DefaultWakeupBytes(4096) || got.RingbufWakeupBytes != 64 {
		t.Errorf("ringbuf_size %d, ringbuf_wakeup_bytes %d; want 4096 and %d", got.RingbufSize, got.RingbufWakeupBytes, open.DefaultWakeupBytes(4096))
	}
	// Set by the user, the wakeup threshold is the user's, and so is the
	// mistake: the error names the line of the knob they wrote.
	file = "probes:\n  open:\n    ringbuf_size: 4096\n    ringbuf_wakeup_bytes: 65536\n"
	_, err = config.Parse([]byte(file), "small.yaml")
	if err == nil || !strings.Contains(err.Error(), "small.yaml: line 4: probes.open.ringbuf_wakeup_bytes: 65536 must be below half of ringbuf_size (4096)") {
		t.Errorf("got %v", err)
	}
	// The default ring with a too large wakeup threshold: the user's line.
	_, err = config.Parse([]byte("probes:\n  open:\n    events: true\n    ringbuf_wakeup_bytes: 4194304\n"), "big.yaml")
	if err == nil || !strings.Contains(err.Error(), "big.yaml: line 4: probes.open.ringbuf_wakeup_bytes") {
		t.Errorf("got %v", err)
	}
}

// Every probe validation error names a line of the user's file.
func TestProbeErrorLinesAreTheUsersFile(t *testing.T) {
	for _, c := range []struct {
		file string
		line string
	}{
		{"probes:\n  process:\n    max_args: 0\n", "line 3: probes.process.max_args"},
		{"log:\n  level: info\nprobes:\n  tcp:\n    ringbuf_size: 3000\n", "line 5: probes.tcp.ringbuf_size"},
		{"probes:\n  open:\n    ringbuf_size: 8192\n    ringbuf_wakeup_bytes: 4096\n", "line 4: probes.open.ringbuf_wakeup_bytes"},
	} {
		_, err := config.Parse([]byte(c.file), "user.yaml")
		if err == nil || !strings.Contains(err.Error(), "user.yaml: "+c.line) {
			t.Errorf("%q: got %v, want %q", c.file, err, c.line)
		}
	}
}
