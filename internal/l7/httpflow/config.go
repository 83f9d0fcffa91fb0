package httpflow

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigilproject/vigil/internal/l7/http"
)

// Config is the `l7.http` section of the agent configuration: how the
// HTTP deriver turns the l7 probe's connection data into http events and
// RED metrics.
type Config struct {
	// Enabled derives http events (and, in `vigil run`, the metrics) while
	// the l7 probe runs.
	Enabled bool `yaml:"enabled"`
	// MaxStreams bounds the parsers kept at once (one per connection and
	// TLS library); the least recently used leaves first, counted.
	MaxStreams int `yaml:"max_streams"`
	// IdleTimeout closes a stream that had no data for this long, which
	// completes a response delimited by the connection's close.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxRoutesPerService caps the http_route values of one service in the
	// metrics; more fold into "other", counted.
	MaxRoutesPerService int `yaml:"max_routes_per_service"`
	// MaxSeries caps the label sets of each RED histogram family; past it
	// route, server address and port fold into "other", counted.
	MaxSeries int `yaml:"max_series"`
	// Headers are header names (case-insensitive) whose values the http
	// events carry; credential headers can never be listed.
	Headers []string `yaml:"headers"`
	// QueueSize bounds the conn_data events waiting for the deriver.
	QueueSize int `yaml:"queue_size"`
}

// DefaultConfig is the built-in default (the embedded config file repeats it).
func DefaultConfig() Config {
	return Config{Enabled: true, MaxStreams: 16384, IdleTimeout: time.Minute, MaxRoutesPerService: 100,
		MaxSeries: 2000, QueueSize: 16384}
}

// FieldError is a problem at a key of the section (relative to l7.http).
type FieldError struct{ Path, Msg string }

// Validate checks the bounds; every error names its key.
func (c *Config) Validate() []FieldError {
	var errs []FieldError
	if c.MaxStreams < 16 || c.MaxStreams > 1<<22 {
		errs = append(errs, FieldError{"max_streams", fmt.Sprintf("%d must be between 16 and 4194304", c.MaxStreams)})
	}
	if c.IdleTimeout < time.Second || c.IdleTimeout > time.Hour {
		errs = append(errs, FieldError{"idle_timeout", fmt.Sprintf("%v must be between 1s and 1h", c.IdleTimeout)})
	}
	if c.MaxRoutesPerService < 1 || c.MaxRoutesPerService > 10000 {
		errs = append(errs, FieldError{"max_routes_per_service", fmt.Sprintf("%d must be between 1 and 10000", c.MaxRoutesPerService)})
	}
	if c.MaxSeries < 10 || c.MaxSeries > 1000000 {
		errs = append(errs, FieldError{"max_series", fmt.Sprintf("%d must be between 10 and 1000000", c.MaxSeries)})
	}
	if c.QueueSize < 64 {
		errs = append(errs, FieldError{"queue_size", fmt.Sprintf("%d must be at least 64", c.QueueSize)})
	}
	if len(c.Headers) > maxHeaders {
		errs = append(errs, FieldError{"headers", fmt.Sprintf("%d names, at most %d", len(c.Headers), maxHeaders)})
	}
	for _, h := range c.Headers {
		switch {
		case h == "" || strings.ContainsAny(h, " \t:\r\n"):
			errs = append(errs, FieldError{"headers", fmt.Sprintf("%q is not a header name", h)})
		case http.IsDenied(h, nil):
			errs = append(errs, FieldError{"headers", fmt.Sprintf("%q carries credentials or session state and is never captured", h)})
		}
	}
	return errs
}

// maxHeaders bounds l7.http.headers (and so the map in each event).
const maxHeaders = 16

// headerSet is the lower-case allow-list.
func (c *Config) headerSet() map[string]bool {
	if len(c.Headers) == 0 {
		return nil
	}
	m := make(map[string]bool, len(c.Headers))
	for _, h := range c.Headers {
		m[strings.ToLower(h)] = true
	}
	return m
}
