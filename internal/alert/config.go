package alert

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Config is the `alerting:` section of vigil's configuration.
type Config struct {
	// Host is the value of the host label on every alert (default: the
	// machine's hostname).
	Host string `yaml:"host"`
	// ExternalLabels are added to every alert that lacks them.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// Alertmanagers receive every alert through API v2; list every member
	// of an Alertmanager cluster.
	Alertmanagers []Endpoint `yaml:"alertmanagers"`
	// Webhooks receive Alertmanager-webhook-shaped JSON.
	Webhooks []Endpoint `yaml:"webhooks"`
	// Stdout prints alerts on standard output; the default is on when no
	// Alertmanager or webhook is configured, off otherwise.
	Stdout *bool `yaml:"stdout"`
	// StateFile keeps firing alerts and undelivered notices across restarts.
	StateFile string `yaml:"state_file"`
	// ResendInterval re-sends firing alerts (1m).
	ResendInterval Duration `yaml:"resend_interval"`
	// Timeout bounds one delivery attempt (10s).
	Timeout Duration `yaml:"timeout"`
	// QueueCapacity bounds each notifier's queue (10000).
	QueueCapacity int `yaml:"queue_capacity"`
}

// Endpoint is one receiver URL with optional extra headers (e.g.
// Authorization).
type Endpoint struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

// FieldError is a config problem at a key path relative to `alerting`.
type FieldError struct{ Path, Msg string }

// Validate checks the section; paths are relative to `alerting`.
func (c *Config) Validate() []FieldError {
	var errs []FieldError
	check := func(kind string, eps []Endpoint) {
		for i, e := range eps {
			u, err := url.Parse(e.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, FieldError{kind, fmt.Sprintf("entry %d: url %q must be http(s)://host:port[/path]", i+1, e.URL)})
			}
		}
	}
	check("alertmanagers", c.Alertmanagers)
	check("webhooks", c.Webhooks)
	for k := range c.ExternalLabels {
		if !model.LabelName(k).IsValidLegacy() {
			errs = append(errs, FieldError{"external_labels", fmt.Sprintf("invalid label name %q", k)})
		}
	}
	if c.QueueCapacity < 0 {
		errs = append(errs, FieldError{"queue_capacity", "must not be negative"})
	}
	return errs
}

// Labels returns the external labels including host.
func (c *Config) Labels() map[string]string {
	out := map[string]string{}
	for k, v := range c.ExternalLabels {
		out[k] = v
	}
	host := c.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	if _, ok := out["host"]; !ok && host != "" {
		out["host"] = host
	}
	return out
}

// NewFromConfig builds a dispatcher with the configured notifiers. stdout
// receives the stdout notifier's lines.
func NewFromConfig(c Config, stdout io.Writer, reg prometheus.Registerer, log *slog.Logger) (*Dispatcher, error) {
	var ns []Notifier
	for _, e := range c.Alertmanagers {
		n, err := NewAlertmanager(e.URL, e.Headers, nil)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	for _, e := range c.Webhooks {
		n, err := NewWebhook(e.URL, "", e.Headers, nil)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	useStdout := len(ns) == 0
	if c.Stdout != nil {
		useStdout = *c.Stdout
	}
	if useStdout {
		ns = append(ns, NewStdout(stdout))
	}
	state := c.StateFile
	if state == "" {
		state = "/var/lib/vigil/alerts.json"
	}
	return NewDispatcher(Options{
		Notifiers:      ns,
		StateFile:      state,
		ExternalLabels: c.Labels(),
		ResendInterval: time.Duration(c.ResendInterval),
		Timeout:        time.Duration(c.Timeout),
		QueueCapacity:  c.QueueCapacity,
		Registerer:     reg,
		Logger:         log,
	})
}

// Duration is a config duration in Prometheus syntax (30s, 5m, 1h, 7d);
// decoding errors name the line.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: want e.g. 30s, 5m, 1h, 7d", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return model.Duration(d).String(), nil }

// String formats like Prometheus.
func (d Duration) String() string { return model.Duration(d).String() }
