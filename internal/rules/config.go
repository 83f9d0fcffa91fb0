package rules

import (
	"fmt"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Config is the `rules:` section of vigil's configuration. Zero values mean
// the defaults listed; see docs/alerting.md.
type Config struct {
	// Files are rule file paths or globs, reloaded on SIGHUP and on change.
	Files []string `yaml:"files"`
	// EvaluationInterval is the default group interval (15s).
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	// FeedInterval is how often the agent's own metrics are copied into the
	// local TSDB (15s).
	FeedInterval model.Duration `yaml:"feed_interval"`
	// DataDir holds the local TSDB (/var/lib/vigil/tsdb).
	DataDir string `yaml:"data_dir"`
	// Retention bounds the TSDB by age (8d: a weekly seasonal rule needs 7d
	// plus its window).
	Retention model.Duration `yaml:"retention"`
	// RetentionSize bounds the TSDB blocks on disk (512MiB).
	RetentionSize ByteSize `yaml:"retention_size"`
	// WatchInterval is how often rule files are checked for changes (10s).
	WatchInterval model.Duration `yaml:"watch_interval"`
	// ResendDelay is how often firing alerts are re-sent (1m).
	ResendDelay model.Duration `yaml:"resend_delay"`
	// OutageTolerance: `for` state older than this is not restored (1h).
	OutageTolerance model.Duration `yaml:"outage_tolerance"`
	// ForGracePeriod: minimum wait before a restored alert fires again
	// (0: restored clocks continue where they stopped).
	ForGracePeriod model.Duration `yaml:"for_grace_period"`
	// QueryTimeout bounds one rule evaluation (1m).
	QueryTimeout model.Duration `yaml:"query_timeout"`
	// MaxSamples bounds the samples one query may load (5000000).
	MaxSamples int `yaml:"max_samples"`
	// ExternalURL is used in generator URLs and templates.
	ExternalURL string `yaml:"external_url"`
}

func (c *Config) applyDefaults() {
	def := func(d *model.Duration, v time.Duration) {
		if *d <= 0 {
			*d = model.Duration(v)
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
