package rules

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/alecthomas/units"
	"go.yaml.in/yaml/v3"

	"github.com/vigilproject/vigil/internal/alert"
)

// Config is the `rules:` section of vigil's configuration. Zero values mean
// the defaults listed; see docs/alerting.md.
type Config struct {
	// Enabled turns the metric-rule engine (and its TSDB) on; default on.
	Enabled *bool `yaml:"enabled"`
	// Files are rule file paths or globs, reloaded on SIGHUP and on change.
	Files []string `yaml:"files"`
	// Builtin loads the embedded agent-health rules (BuiltinFile) in
	// addition to Files; default on.
	Builtin *bool `yaml:"builtin"`
	// EvaluationInterval is the default group interval (15s).
	EvaluationInterval alert.Duration `yaml:"evaluation_interval"`
	// FeedInterval is how often the agent's own metrics are copied into the
	// local TSDB (15s).
	FeedInterval alert.Duration `yaml:"feed_interval"`
	// DataDir holds the local TSDB (/var/lib/vigil/tsdb).
	DataDir string `yaml:"data_dir"`
	// Retention bounds the TSDB by age (8d: a weekly seasonal rule needs 7d
	// plus its window).
	Retention alert.Duration `yaml:"retention"`
	// RetentionSize bounds the TSDB blocks on disk (512MiB).
	RetentionSize ByteSize `yaml:"retention_size"`
	// WatchInterval is how often rule files are checked for changes (10s).
	WatchInterval alert.Duration `yaml:"watch_interval"`
	// ResendDelay is how often firing alerts are re-sent (1m).
	ResendDelay alert.Duration `yaml:"resend_delay"`
	// OutageTolerance: `for` state older than this is not restored (1h).
	OutageTolerance alert.Duration `yaml:"outage_tolerance"`
	// ForGracePeriod: minimum wait before a restored alert fires again
	// (0: restored clocks continue where they stopped).
	ForGracePeriod alert.Duration `yaml:"for_grace_period"`
	// QueryTimeout bounds one rule evaluation (1m).
	QueryTimeout alert.Duration `yaml:"query_timeout"`
	// MaxSamples bounds the samples one query may load (5000000).
	MaxSamples int `yaml:"max_samples"`
	// ExternalURL is used in generator URLs and templates.
	ExternalURL string `yaml:"external_url"`
}

func (c *Config) applyDefaults() {
	def := func(d *alert.Duration, v time.Duration) {
		if *d <= 0 {
			*d = alert.Duration(v)
		}
	}
	def(&c.EvaluationInterval, 15*time.Second)
	def(&c.FeedInterval, 15*time.Second)
	def(&c.Retention, 8*24*time.Hour)
	def(&c.WatchInterval, 10*time.Second)
	def(&c.ResendDelay, time.Minute)
	def(&c.OutageTolerance, time.Hour)
	def(&c.QueryTimeout, time.Minute)
	if c.DataDir == "" {
		c.DataDir = "/var/lib/vigil/tsdb"
	}
	if c.RetentionSize <= 0 {
		c.RetentionSize = 512 << 20
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = 5_000_000
	}
}

// ByteSize is a size in bytes written with a unit: 512MiB, 1GB, 4096B.
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := units.ParseBase2Bytes(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: size %q: want a number with a unit such as 512MiB", n.Line, n.Value)
	}
	*b = ByteSize(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return units.Base2Bytes(b).String(), nil }

// IsEnabled reports whether the engine should run.
func (c *Config) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// Validate checks the section; paths are relative to `rules`.
func (c *Config) Validate() []alert.FieldError {
	var errs []alert.FieldError
	for _, p := range c.Files {
		if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, alert.FieldError{Path: "files", Msg: fmt.Sprintf("bad pattern %q: %v", p, err)})
		}
	}
	if c.EvaluationInterval < 0 || c.FeedInterval < 0 {
		errs = append(errs, alert.FieldError{Path: "evaluation_interval", Msg: "intervals must be positive"})
	}
	if c.Retention > 0 && c.Retention < alert.Duration(2*time.Hour) {
		errs = append(errs, alert.FieldError{Path: "retention", Msg: fmt.Sprintf("%v is shorter than one TSDB block (2h)", c.Retention)})
	}
	if c.MaxSamples < 0 {
		errs = append(errs, alert.FieldError{Path: "max_samples", Msg: "must not be negative"})
	}
	return errs
}
