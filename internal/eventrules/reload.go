package eventrules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilproject/vigil/internal/rulewatch"
)

// Config is the `event_rules:` section of the agent configuration.
type Config struct {
	// Builtin loads the embedded default pack (deploy/rules/events) in
	// addition to Files; default on. A file that defines a rule, sequence,
	// macro or list of the pack again replaces that item.
	Builtin *bool `yaml:"builtin"`
	// Files are rule file paths or globs.
	Files []string `yaml:"files"`
	// WatchInterval is how often the files are checked for changes
	// (SIGHUP reloads at once). 0 disables polling.
	WatchInterval time.Duration `yaml:"watch_interval"`
	// AncestryDepth bounds proc.ancestors.* (8).
	AncestryDepth int `yaml:"ancestry_depth"`
	// Suppress is the default dedup window (1m).
	Suppress time.Duration `yaml:"suppress"`
	// MaxSequenceKeysPerRule and MaxSequenceKeys bound sequence and
	// threshold state (10000 and 100000).
	MaxSequenceKeysPerRule int `yaml:"max_sequence_keys_per_rule"`
	MaxSequenceKeys        int `yaml:"max_sequence_keys"`
	// ReorderWindow delays events for sequences to put them in time order
	// across CPUs and probes (50ms).
	ReorderWindow time.Duration `yaml:"reorder_window"`
	// ResolveAfter is how long an event alert stays firing (5m).
	ResolveAfter time.Duration `yaml:"resolve_after"`
	// QueueSize bounds the events waiting for the engine (65536).
	QueueSize int `yaml:"queue_size"`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	o := DefaultOptions()
	return Config{WatchInterval: 10 * time.Second, AncestryDepth: o.AncestryDepth, Suppress: o.Suppress,
		MaxSequenceKeysPerRule: o.MaxKeysPerRule, MaxSequenceKeys: o.MaxKeysTotal, ReorderWindow: o.ReorderWindow,
		ResolveAfter: o.ResolveAfter, QueueSize: 65536}
}

// Validate checks the bounds.
func (c *Config) Validate() error {
	var errs []error
	if c.AncestryDepth < 0 || c.AncestryDepth > 64 {
		errs = append(errs, fmt.Errorf("ancestry_depth: %d must be between 0 and 64", c.AncestryDepth))
	}
	if c.MaxSequenceKeysPerRule < 1 || c.MaxSequenceKeys < 1 {
		errs = append(errs, errors.New("max_sequence_keys_per_rule and max_sequence_keys must be at least 1"))
	}
	if c.ReorderWindow < 0 || c.ReorderWindow > 10*time.Second {
		errs = append(errs, fmt.Errorf("reorder_window: %v must be between 0 and 10s", c.ReorderWindow))
	}
	if c.QueueSize < 64 {
		errs = append(errs, fmt.Errorf("queue_size: %d must be at least 64", c.QueueSize))
	}
	if c.Suppress < 0 || c.ResolveAfter < 0 || c.WatchInterval < 0 {
		errs = append(errs, errors.New("suppress, resolve_after and watch_interval must not be negative"))
	}
	return errors.Join(errs...)
}

// BuiltinEnabled reports whether the embedded pack is loaded.
func (c *Config) BuiltinEnabled() bool { return c.Builtin == nil || *c.Builtin }

// Patterns are the files to load: the embedded pack when enabled, then
// Files.
func (c *Config) Patterns() []string {
	var out []string
	if c.BuiltinEnabled() {
		out = BuiltinFiles()
	}
	return append(out, c.Files...)
}

// Options turns the config into engine options.
func (c *Config) Options(host string) Options {
	return Options{AncestryDepth: c.AncestryDepth, Suppress: c.Suppress, MaxKeysPerRule: c.MaxSequenceKeysPerRule,
		MaxKeysTotal: c.MaxSequenceKeys, ReorderWindow: c.ReorderWindow, ResolveAfter: c.ResolveAfter, Host: host}
}

// Loader (re)loads rule files into an engine. A load that fails keeps the
// rules in force and is logged and counted.
type Loader struct {
	Patterns []string
	Opts     Options
	Engine   *Engine
	Log      *slog.Logger
	// OnLoad is called after a successful load with the new ruleset.
	OnLoad func(*Ruleset)
	// OnFailure is called after a failed load with its error.
	OnFailure func(error)

	mu      sync.Mutex
	watch   *rulewatch.Watcher
	lastErr error
	loaded  bool
}

// ResolveFiles expands globs; a pattern without glob characters must name
// an existing file, a glob must match at least one. Names of the embedded
// pack (BuiltinPrefix) pass through.
func ResolveFiles(patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		if strings.HasPrefix(p, BuiltinPrefix) {
			out = append(out, p)
			continue
		}
		if !strings.ContainsAny(p, "*?[") {
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("event rule file: %w", err)
			}
			out = append(out, p)
			continue
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("event rule files %q: %w", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("event rule files %q: no file matches", p)
		}
		out = append(out, m...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Load reads and compiles the files and installs them.
func (l *Loader) Load() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadLocked()
}

func (l *Loader) loadLocked() error {
	m := l.Engine.m
	files, err := ResolveFiles(l.Patterns)
	var rs *Ruleset
	var ds Diags
	l.watcher().Mark()
	if err == nil {
		rs, ds = LoadFiles(files, l.Opts)
		err = ds.Err()
	}
	if err != nil {
		l.lastErr = err
		m.reload.Failure()
		if l.Log != nil {
			l.Log.Error("event rules not loaded; the previous rules stay in force", "err", err)
		}
		if l.OnFailure != nil {
			l.OnFailure(err)
		}
		return err
	}
	for _, w := range ds.Warnings() {
		if l.Log != nil {
			l.Log.Warn("event rules", "warning", w.String())
		}
	}
	l.Engine.Install(rs)
	l.lastErr = nil
	m.reload.Success(time.Now())
	if l.Log != nil {
		// The first load is part of start-up, which reports it once it
		// succeeded (a failed start prints only its error).
		lvl := slog.LevelInfo
		if !l.loaded {
			lvl = slog.LevelDebug
		}
		l.Log.Log(context.Background(), lvl, "event rules loaded", "files", len(files), "summary", rs.Summary())
	}
	l.loaded = true
	if l.OnLoad != nil {
		l.OnLoad(rs)
	}
	return nil
}

// LastError is the error of the last load, nil after a success.
func (l *Loader) LastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// watcher polls the content hash of the files; call with l.mu held.
func (l *Loader) watcher() *rulewatch.Watcher {
	if l.watch == nil {
		l.watch = &rulewatch.Watcher{Engine: rulewatch.EngineEvent, Patterns: l.Patterns, Reload: l.Load, Log: l.Log}
	}
	return l.watch
}

// Watch reloads on a signal from hup and when the content of the files
// changes (checked every interval; 0: only on hup), until ctx ends.
func (l *Loader) Watch(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	l.mu.Lock()
	w := l.watcher()
	l.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = l.Load()
		case <-tick:
			if w.Changed() {
				if l.Log != nil {
					l.Log.Info("event rule files changed, reloading")
				}
				_ = l.Load()
			}
		}
	}
}
