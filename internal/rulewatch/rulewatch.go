// Package rulewatch is what the metric-rule and event-rule engines share
// about their rule files: a content hash of the files their globs match, a
// poller that reloads when that hash changes, and one family of reload
// metrics told apart by an engine label.
//
// Hashing contents rather than comparing size and mtime also catches
// Kubernetes ConfigMap updates, which swap a ..data symlink to a new
// directory and may leave both unchanged, and editors that replace files.
package rulewatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Engine names, the values of the engine label.
const (
	EngineMetric = "metric"
	EngineEvent  = "event"
)

// Snapshot expands the globs (a name without glob characters is taken as
// is) and hashes the names and contents of the files, following symlinks.
// A file that cannot be read still changes the hash, and is reported.
func Snapshot(patterns []string) (files []string, hash string, err error) {
	var errs []error
	for _, p := range patterns {
		if strings.HasPrefix(p, "builtin:") {
			continue // embedded: cannot change while the agent runs
		}
		if !strings.ContainsAny(p, "*?[") {
			files = append(files, p)
			continue
		}
		m, gerr := filepath.Glob(p)
		if gerr != nil {
			errs = append(errs, fmt.Errorf("rule file pattern %q: %w", p, gerr))
			continue
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	files = slices.Compact(files)
	h := sha256.New()
	for _, f := range files {
		b, rerr := os.ReadFile(f)
		if rerr != nil {
			fmt.Fprintf(h, "%s\x00error\x00", f)
			errs = append(errs, rerr)
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return files, fmt.Sprintf("%x", h.Sum(nil)), errors.Join(errs...)
}

// Watcher calls Reload whenever the hash of the files matched by Patterns
// differs from the one seen at the last load.
type Watcher struct {
	Engine   string
	Patterns []string
	Interval time.Duration // 0: no polling
	// Reload loads the files; its errors are the engine's to report.
	Reload func() error
	Log    *slog.Logger

	mu   sync.Mutex
	last string
}

// Mark records the current hash as loaded; call it right before or after a
// load made outside the watcher (start-up, SIGHUP).
func (w *Watcher) Mark() {
	_, h, _ := Snapshot(w.Patterns)
	w.mu.Lock()
	w.last = h
	w.mu.Unlock()
}

// Changed reports whether the files differ from the last load or check.
func (w *Watcher) Changed() bool {
	_, h, _ := Snapshot(w.Patterns)
	w.mu.Lock()
	defer w.mu.Unlock()
	if h == w.last {
		return false
	}
	w.last = h
	return true
}

// Run polls until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	if w.Interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.Changed() {
			if w.Log != nil {
				w.Log.Info("rule files changed, reloading", "engine", w.Engine)
			}
			_ = w.Reload() // logged, exported and alerted on by the engine
		}
	}
}

// Metrics is one engine's share of the reload-metrics family. Each engine
// registers its own; the engine label is constant, so both fit in one
// registry under the same names.
type Metrics struct {
	Reloads *prometheus.CounterVec // by result: success, failure
	OK      prometheus.Gauge
	OKTime  prometheus.Gauge
}

// NewMetrics builds the reload metrics of one engine.
func NewMetrics(engine string) *Metrics {
	l := prometheus.Labels{"engine": engine}
	return &Metrics{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rule_reloads_total", ConstLabels: l,
			Help: "Rule file (re)loads by engine (metric, event) and result; a failed reload keeps the previous rules.",
		}, []string{"result"}),
		OK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rule_last_reload_successful", ConstLabels: l,
			Help: "1 if the last load of the engine's rule files succeeded, 0 if it failed and the previous rules are still in use.",
		}),
		OKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rule_last_reload_success_timestamp_seconds", ConstLabels: l,
			Help: "Time of the last successful load of the engine's rule files.",
		}),
	}
}

// Success records a good load at now.
func (m *Metrics) Success(now time.Time) {
	m.Reloads.WithLabelValues("success").Inc()
	m.OK.Set(1)
	m.OKTime.Set(float64(now.UnixNano()) / 1e9)
}

// Failure records a failed load.
func (m *Metrics) Failure() {
	m.Reloads.WithLabelValues("failure").Inc()
	m.OK.Set(0)
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Reloads, m.OK, m.OKTime}
}

// FailedAlertName is the alert both engines raise while their last reload
// failed, with the engine label telling which.
const FailedAlertName = "VigilRuleReloadFailed"
