package rules

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/rulewatch"
)

// Source is the dispatcher source name of alerts from metric rules.
const Source = "metrics"

// internalSource is used for the engine's own alerts (failed reloads).
const internalSource = "rules-internal"

// Options wire the engine into the agent.
type Options struct {
	Config Config
	// Gatherer is the agent's registry, copied into the local TSDB.
	Gatherer prometheus.Gatherer
	// Registerer receives the engine's self-metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Dispatcher delivers alerts (nil: alerts are only visible in the API).
	Dispatcher *alert.Dispatcher
	// ExternalLabels are visible to templates as $externalLabels.
	ExternalLabels map[string]string
	Logger         *slog.Logger
}

// Engine evaluates Prometheus rule files over the agent's own metrics: a
// feeder copies the registry into a local TSDB, the Prometheus rule manager
// evaluates the rules with the PromQL engine and hands alerts to the
// dispatcher.
type Engine struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	db   *tsdb.DB
	qe   *promql.Engine
	mgr  *promrules.Manager
	feed *feeder
	m    *engineMetrics

	reloadMu  sync.Mutex
	watcher   *rulewatch.Watcher
	reloadErr error       // non-nil while the last reload failed
	reloadAlt alert.Alert // the VigilRuleReloadFailed alert while it fires

	tmpDir string // set when the TSDB is a temporary one (data dir locked)

	closeOnce sync.Once
	closeErr  error
}

// openTSDB opens the TSDB in cfg.DataDir. If another process holds that
// directory's lock (a second agent, or tests running agents side by side),
// the rules still run, over a temporary TSDB that is removed on Close: the
// probes and alerts matter more than keeping history, and the warning says
// what is lost.
func openTSDB(cfg Config, log *slog.Logger) (*tsdb.DB, string, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, "", fmt.Errorf("rules: data dir: %w", err)
	}
	db, err := tsdb.Open(cfg.DataDir, log.With("subsystem", "tsdb"), nil, tsdbOptions(cfg), nil)
	if err == nil {
		return db, "", nil
	}
	if !strings.Contains(err.Error(), "lock DB directory") {
		return nil, "", fmt.Errorf("rules: opening TSDB in %s: %w", cfg.DataDir, err)
	}
	tmp, terr := os.MkdirTemp("", "vigil-tsdb-")
	if terr != nil {
		return nil, "", fmt.Errorf("rules: TSDB in %s is locked by another process and no temporary one could be made: %w", cfg.DataDir, terr)
	}
	log.Warn("rules.data_dir is locked by another process (another vigil with the same data_dir?); "+
		"using a temporary TSDB: rule history and `for` state will not survive a restart",
		"data_dir", cfg.DataDir, "temporary", tmp)
	db, err = tsdb.Open(tmp, log.With("subsystem", "tsdb"), nil, tsdbOptions(cfg), nil)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, "", fmt.Errorf("rules: opening temporary TSDB in %s: %w", tmp, err)
	}
	return db, tmp, nil
}

// New opens the TSDB in cfg.DataDir and loads the rule files. Any rule file
// error is returned (with file:line) and nothing is started.
func New(opts Options) (*Engine, error) {
	cfg := opts.Config
	cfg.applyDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, tmpDir, err := openTSDB(cfg, log)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, opts: opts, log: log, db: db, tmpDir: tmpDir, m: newEngineMetrics()}
	// Polls content hashes of the files; SIGHUP reloads come from the agent.
	e.watcher = &rulewatch.Watcher{Engine: rulewatch.EngineMetric, Patterns: cfg.Files,
		Interval: time.Duration(cfg.WatchInterval), Reload: e.Reload, Log: log}
	e.qe = promql.NewEngine(promql.EngineOpts{
		Logger:               log.With("subsystem", "promql"),
		MaxSamples:           cfg.MaxSamples,
		Timeout:              time.Duration(cfg.QueryTimeout),
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	e.mgr = promrules.NewManager(&promrules.ManagerOptions{
		ExternalURL:     nil,
		QueryFunc:       promrules.EngineQueryFunc(e.qe, db),
		NotifyFunc:      e.notify,
		Context:         context.Background(),
		Appendable:      db,
		Queryable:       db,
		Logger:          log.With("subsystem", "rule-manager"),
		Registerer:      nil, // Prometheus' own rule metrics stay private; vigil_* below
		OutageTolerance: time.Duration(cfg.OutageTolerance),
		ForGracePeriod:  time.Duration(cfg.ForGracePeriod),
		ResendDelay:     time.Duration(cfg.ResendDelay),
		GroupLoader:     loader{},
	})
	e.feed = newFeeder(opts.Gatherer, db, e.m)
	e.m.extra = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_tsdb_storage_bytes",
			Help: "Bytes used by the local TSDB on disk (blocks, WAL, head chunks).",
		}, func() float64 { return float64(dirSize(db.Dir())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_tsdb_head_series",
			Help: "Series in the in-memory head of the local TSDB.",
		}, func() float64 { return float64(db.Head().NumSeries()) }),
	}
	if opts.Registerer != nil {
		for _, c := range e.m.collectors() {
			if err := opts.Registerer.Register(c); err != nil {
				e.Close()
				return nil, fmt.Errorf("rules: registering metrics: %w", err)
			}
		}
	}
	if err := e.Reload(); err != nil {
		e.Close()
		return nil, err
	}
	// A VigilRuleReloadFailed restored from the dispatcher's state file is
	// over: the rules just loaded.
	if opts.Dispatcher != nil {
		opts.Dispatcher.Reconcile(internalSource, nil)
	}
	return e, nil
}

func tsdbOptions(cfg Config) *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.RetentionDuration = int64(time.Duration(cfg.Retention) / time.Millisecond)
	o.MaxBytes = int64(cfg.RetentionSize)
	// Compact blocks up to a tenth of the retention, as Prometheus does.
	o.MaxBlockDuration = max(o.MinBlockDuration, o.RetentionDuration/10)
	// The agent holds thousands of series, not millions: a smaller stripe
	// table saves memory at no cost.
	o.StripeSize = 1024
	o.WALCompression = "snappy"
	return o
}

// Run feeds the TSDB, evaluates rules, watches the rule files and reconciles
// alerts after a restart until ctx ends. It then stops the rule manager and
// closes the TSDB.
func (e *Engine) Run(ctx context.Context) error {
	start := time.Now()
	if err := e.feed.feed(ctx, start); err != nil {
		e.log.Warn("feeding local TSDB", "err", err)
	}
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	run(func() { e.feed.run(ctx, time.Duration(e.cfg.FeedInterval)) })
	run(e.mgr.Run)
	run(func() { e.watcher.Run(ctx) })
	run(func() { e.reconcileAfterStart(ctx, start) })
	<-ctx.Done()
	e.mgr.Stop()
	wg.Wait()
	if err := e.feed.markAllStale(context.Background(), time.Now()); err != nil {
		e.log.Warn("writing staleness markers", "err", err)
	}
	return e.Close()
}

// Close releases the TSDB. Run calls it; call it yourself only if Run was
// never started.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = errors.Join(e.qe.Close(), e.db.Close())
		if e.tmpDir != "" {
			os.RemoveAll(e.tmpDir)
		}
	})
	return e.closeErr
}

// DB exposes the local TSDB (for tests, backfill and the HTTP API).
func (e *Engine) DB() *tsdb.DB { return e.db }

// Manager exposes the Prometheus rule manager (read-only use).
func (e *Engine) Manager() *promrules.Manager { return e.mgr }

// Reload re-reads the rule files. The new set is compiled aside and swapped
// in only when every file is valid; otherwise the running rules stay, the
// error (with file:line) is returned and logged,
// vigil_rules_last_reload_successful goes to 0 and an internal
// VigilRuleReloadFailed alert fires until a reload succeeds.
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	files, err := resolveFiles(e.cfg.Files)
	if e.watcher != nil {
		e.watcher.Mark()
	}
	if e.cfg.Builtin == nil || *e.cfg.Builtin {
		files = append(files, BuiltinFile)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, f := range files {
		if _, fe := LoadFile(f); fe != nil {
			errs = append(errs, fe...)
		}
	}
	if len(errs) == 0 {
		err := e.mgr.Update(time.Duration(e.cfg.EvaluationInterval), files,
			labels.FromMap(e.opts.ExternalLabels), e.cfg.ExternalURL, e.evalIteration)
		if err != nil {
			errs = append(errs, err)
		}
	}
	now := time.Now()
	if len(errs) > 0 {
		err := errors.Join(errs...)
		e.m.reload.Failure()
		for _, fe := range errs {
			e.log.Error("rule reload failed, keeping the previous rules", "err", fe)
		}
		e.reloadErr = err
		if e.reloadAlt.StartsAt.IsZero() {
			e.reloadAlt.StartsAt = now
		}
		e.reloadAlt.Labels = map[string]string{"alertname": rulewatch.FailedAlertName, "severity": "warning", "engine": rulewatch.EngineMetric}
		e.reloadAlt.Annotations = map[string]string{
			"summary":     "vigil could not reload its rule files; the previous rules are still evaluated.",
			"description": err.Error(),
		}
		e.sendInternal(e.reloadAlt)
		return err
	}
	e.m.reload.Success(now)
	n := 0
	for _, g := range e.mgr.RuleGroups() {
		n += len(g.Rules())
	}
	e.m.rulesLoaded.Set(float64(n))
	if e.reloadErr != nil {
		e.reloadErr = nil
		resolved := e.reloadAlt
		resolved.EndsAt = now
		e.sendInternal(resolved)
		e.reloadAlt = alert.Alert{}
	}
	e.log.Info("rules loaded", "files", len(files), "rules", n)
	return nil
}

// CheckFiles parses every rule file cfg names (and the built-in rules)
// without opening the TSDB; errors name file and line.
func CheckFiles(cfg Config) error {
	files, err := resolveFiles(cfg.Files)
	errs := []error{err}
	for _, f := range files {
		if _, fe := LoadFile(f); fe != nil {
			errs = append(errs, fe...)
		}
	}
	return errors.Join(errs...)
}

// LastReloadError returns the error of the last reload, nil if it succeeded.
func (e *Engine) LastReloadError() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.reloadErr
}

func (e *Engine) sendInternal(a alert.Alert) {
	if e.opts.Dispatcher != nil {
		e.opts.Dispatcher.Send(internalSource, []alert.Alert{a})
	}
}

// resolveFiles expands the globs; a pattern that matches nothing adds no
// file (the default /etc/vigil/rules/*.yml may be empty).
func resolveFiles(patterns []string) (files []string, err error) {
	var errs []error
	for _, p := range patterns {
		matches, gerr := filepath.Glob(p)
		if gerr != nil {
			errs = append(errs, fmt.Errorf("rule file pattern %q: %w", p, gerr))
			continue
		}
		files = append(files, matches...)
	}
	slices.Sort(files)
	files = slices.Compact(files)
	for _, f := range files {
		if _, serr := os.Stat(f); serr != nil {
			errs = append(errs, serr)
		}
	}
	return files, errors.Join(errs...)
}

func (e *Engine) evalIteration(ctx context.Context, g *promrules.Group, ts time.Time) {
	promrules.DefaultEvalIterationFunc(ctx, g, ts)
	key := g.File() + ";" + g.Name()
	e.m.evalDuration.WithLabelValues(key).Observe(g.GetEvaluationTime().Seconds())
	failed := 0
	for _, r := range g.Rules() {
		if r.Health() == promrules.HealthBad {
			failed++
		}
	}
	if failed > 0 {
		e.m.evalFailures.WithLabelValues(key).Add(float64(failed))
	}
}

// notify is the rule manager's NotifyFunc.
func (e *Engine) notify(_ context.Context, expr string, alerts ...*promrules.Alert) {
	if e.opts.Dispatcher == nil || len(alerts) == 0 {
		return
	}
	out := make([]alert.Alert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, e.toAlert(expr, a))
	}
	e.opts.Dispatcher.Send(Source, out)
}

// toAlert converts like Prometheus' rules.SendAlerts, and adds a default
// severity so every alert can be routed on it.
func (e *Engine) toAlert(expr string, a *promrules.Alert) alert.Alert {
	out := alert.Alert{
		Labels:       a.Labels.Map(),
		Annotations:  a.Annotations.Map(),
		StartsAt:     a.FiredAt,
		EndsAt:       a.ValidUntil,
		GeneratorURL: e.cfg.ExternalURL + strutil.TableLinkForExpression(expr),
	}
	if !a.ResolvedAt.IsZero() {
		out.EndsAt = a.ResolvedAt
	}
	if out.Labels["severity"] == "" {
		out.Labels["severity"] = "warning"
	}
	return out
}

// reconcileAfterStart waits until every group has been evaluated once, then
// tells the dispatcher which metric alerts are still active, so alerts that
// were firing before a restart and no longer hold get a resolved notice.
func (e *Engine) reconcileAfterStart(ctx context.Context, start time.Time) {
	if e.opts.Dispatcher == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		done := true
		for _, g := range e.mgr.RuleGroups() {
			if g.GetLastEvaluation().Before(start) {
				done = false
			}
		}
		if !done {
			continue
		}
		var current []alert.Alert
		for _, r := range e.mgr.AlertingRules() {
			for _, a := range r.ActiveAlerts() {
				current = append(current, e.toAlert(r.Query().String(), a))
			}
		}
		e.opts.Dispatcher.Reconcile(Source, current)
		return
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
