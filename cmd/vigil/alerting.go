package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/rules"
)

// alerting is the alert dispatcher plus the metric-rule engine of `vigil
// run`. The dispatcher is the single delivery path for every alert source.
type alerting struct {
	Dispatcher *alert.Dispatcher
	engine     *rules.Engine // nil when rules.enabled is false
	log        *slog.Logger
}

// checkAlerting parses the rule files without touching the data dir, so
// that `vigil run` reports a bad rule file (file:line) before attaching
// anything, and a missing privilege before a missing data dir.
func checkAlerting(cfg *config.Config) error {
	if !cfg.Rules.IsEnabled() {
		return nil
	}
	return rules.CheckFiles(cfg.Rules)
}

// startAlerting builds the dispatcher, opens the local TSDB and loads the
// rules, and mounts /api/v1/rules and /api/v1/alerts on mux.
func startAlerting(cfg *config.Config, reg *prometheus.Registry, mux *http.ServeMux, log *slog.Logger) (*alerting, error) {
	d, err := alert.NewFromConfig(cfg.Alerting, os.Stdout, reg, log.With("component", "alert"))
	if err != nil {
		return nil, err
	}
	al := &alerting{Dispatcher: d, log: log}
	if cfg.Rules.IsEnabled() {
		al.engine, err = rules.New(rules.Options{
			Config:         cfg.Rules,
			Gatherer:       reg,
			Registerer:     reg,
			Dispatcher:     d,
			ExternalLabels: cfg.Alerting.Labels(),
			Logger:         log.With("component", "rules"),
		})
		if err != nil {
			return nil, err
		}
	}
	mux.Handle("GET /api/v1/rules", rules.RulesHandler(al.engine))
	mux.Handle("GET /api/v1/alerts", rules.AlertsHandler(al.engine, d))
	return al, nil
}

// Run delivers alerts and evaluates rules until ctx ends; SIGHUP reloads
// the rule files.
func (al *alerting) Run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = al.Dispatcher.Run(ctx) }()
	if al.engine != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs[1] = al.engine.Run(ctx) }()
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if al.engine == nil {
				continue
			}
			al.log.Info("SIGHUP: reloading rules")
			_ = al.engine.Reload() // logged, exported and alerted on by Reload
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the engine when Run was never started.
func (al *alerting) Close() {
	if al.engine != nil {
		_ = al.engine.Close()
	}
}
