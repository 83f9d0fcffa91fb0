package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/server"
)

func registerRun(app *kingpin.Application) {
	cmd := app.Command("run", "Run the agent: attach the enabled probes and serve /metrics and /healthz.")
	configFile := cmd.Flag("config", "YAML config file, layered over the embedded defaults (see `vigil config default`).").Short('c').String()
	listen := cmd.Flag("web.listen-address", "Address for /metrics and the API (overrides web.listen_address).").String()
	webConfig := cmd.Flag("web.config.file", "Prometheus exporter-toolkit web config for TLS and basic auth (overrides web.config_file).").String()
	logLevel := cmd.Flag("log.level", "Log level: debug, info, warn, error (overrides log.level).").Enum("debug", "info", "warn", "error")
	logFormat := cmd.Flag("log.format", "Log format: logfmt or json (overrides log.format).").Enum("logfmt", "json")
	evFlags := registerEventRuleFlags(cmd)
	cmd.Action(func(*kingpin.ParseContext) error {
		cfg, err := loadConfig(*configFile)
		if err != nil {
			return err
		}
		if *listen != "" {
			cfg.Web.ListenAddress = *listen
		}
		if *webConfig != "" {
			cfg.Web.ConfigFile = *webConfig
		}
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
		if *logFormat != "" {
			cfg.Log.Format = *logFormat
		}
		evFlags.apply(cfg)
		return runAgent(cfg)
	})
}

func runAgent(cfg *config.Config) error {
	log := newLogger(cfg.Log)
	// Event rules load first: they decide which probes are needed, and a
	// bad rule file fails fast.
	er, err := setupEventRules(cfg, log)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, log, er.probes(cfg))
	if err != nil {
		return err
	}
	// Bind before attaching, so a taken port fails fast with nothing attached.
	srv, err := server.Listen(cfg.Web.ListenAddress, cfg.Web.ConfigFile, a.Registry, log)
	if err != nil {
		return err
	}
	// A bad rule file fails fast, before anything is attached.
	if err := checkAlerting(cfg); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	// Subscribe before the probes start; events wait in the queue until
	// the engine runs.
	er.attach(a)
	if err := a.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	defer a.Close()
	al, err := startAlerting(cfg, a.Registry, srv.Mux, log)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	er.setSink(al.Dispatcher)
	log.Info("vigil started", "probes", a.Names(), "listen", srv.Addr(), "startup", a.StartupDuration().Round(time.Millisecond))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve() }()
	go func() { errc <- a.Run(ctx) }()
	alDone := make(chan error, 1)
	go func() { alDone <- al.Run(ctx) }()
	go er.run(ctx)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "signal", context.Cause(ctx))
	case runErr = <-errc:
		stop()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	er.wait() // the event-rule engine hands its last alerts to the dispatcher
	// Let the rule engine close its TSDB and the dispatcher save its state.
	select {
	case err := <-alDone:
		if err != nil {
			log.Error("alerting shutdown", "err", err)
		}
	case <-shutdownCtx.Done():
		log.Error("alerting did not stop in time")
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	_ = os.Stderr.Sync()
	return nil
}
