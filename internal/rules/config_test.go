package rules_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/config"
	_ "github.com/vigilproject/vigil/internal/probe/all" // the default config enables probes
)

// The rules: and alerting: sections go through vigil's strict config
// decoder: defaults come from the embedded file, mistakes name the line.
func TestConfigSections(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Rules.IsEnabled() || time.Duration(cfg.Rules.EvaluationInterval) != 15*time.Second ||
		cfg.Rules.RetentionSize != 512<<20 || time.Duration(cfg.Rules.Retention) != 8*24*time.Hour {
		t.Fatalf("defaults: %+v", cfg.Rules)
	}
	if len(cfg.Alerting.Alertmanagers) != 0 || cfg.Alerting.Stdout != nil {
		t.Fatalf("alerting defaults: %+v", cfg.Alerting)
	}
	good := "rules:\n  files: [/x/*.yml]\n  feed_interval: 5s\nalerting:\n  alertmanagers:\n  - url: http://127.0.0.1:9093\n  stdout: true\n"
	cfg, err = config.Parse([]byte(good), "good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Rules.FeedInterval) != 5*time.Second || cfg.Alerting.Alertmanagers[0].URL != "http://127.0.0.1:9093" || !*cfg.Alerting.Stdout {
		t.Fatalf("parsed: %+v %+v", cfg.Rules, cfg.Alerting)
	}
	for content, want := range map[string]string{
		"rules:\n  evaluation_interval: soon\n":       "bad.yml: line 2: duration \"soon\"",
		"rules:\n  retention_size: lots\n":            "bad.yml: line 2: size \"lots\"",
		"alerting:\n  resend_intervall: 1m\n":         "bad.yml: line 2: unknown key \"resend_intervall\" in alerting",
		"alerting:\n  webhooks:\n  - url: ftp://x/\n": "bad.yml: line 2: alerting.webhooks: entry 1: url \"ftp://x/\"",
		"rules:\n  retention: 1h\n":                   "bad.yml: line 2: rules.retention: 1h is shorter than one TSDB block",
	} {
		_, err := config.Parse([]byte(content), "bad.yml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", content, err, want)
		}
	}
}
