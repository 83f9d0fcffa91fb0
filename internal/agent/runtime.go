package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/eventrules"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/rules"
	"github.com/vigilproject/vigil/internal/schema"
	"github.com/vigilproject/vigil/internal/server"
	"github.com/vigilproject/vigil/internal/servicemap"
)

// Options say which parts of the runtime a verb needs. The zero value is
// the probes alone (the enabled ones), as `vigil trace` and `vigil top` use.
type Options struct {
	// Probes to run; nil: the enabled ones. Event rules add the probes
	// they need either way.
	Probes []string
	// EventRules loads the event rules (the embedded pack unless
	// event_rules.builtin is false, plus event_rules.files), switches on
	// the probes they need, narrows kernel filters to them and evaluates
	// them. A bad rule file fails Open.
	EventRules bool
	// Alerting delivers alerts as the alerting section says and, when
	// rules.enabled, evaluates metric rules over a local TSDB.
	Alerting bool
	// Listen serves /metrics, /healthz and the APIs on web.listen_address;
	// the port is bound by Open, before anything is attached.
	Listen bool
	// AlertSink also receives every event-rule alert (a terminal printer).
	AlertSink eventrules.Sink
	// Alertmanagers, when Alerting is off, get event-rule alerts through
	// API v2 (`vigil trace alerts --alertmanager.url`).
	Alertmanagers []string
	// Pprof serves Go runtime profiles under /debug/pprof/ (with Listen).
	Pprof bool
}

// Open loads the rules and prepares the probes a verb needs; nothing is
// attached until Main. Errors name the rule file and line, the taken port
// or the missing probe.
func Open(cfg *config.Config, log *slog.Logger, opts Options) (*Agent, error) {
	var er *eventRules
	probes := opts.Probes
	if opts.EventRules {
		// Event rules load first: they decide which probes are needed, and
		// a bad rule file fails fast.
		var err error
		if er, err = loadEventRules(cfg, log); err != nil {
			return nil, err
		}
		if er != nil {
			if probes == nil {
				probes = cfg.EnabledProbes()
			}
			probes = er.probes(probes)
			er.narrow(cfg, probes)
		}
	}
	a, err := New(cfg, log, probes)
	if err != nil {
		return nil, err
	}
	a.opts, a.er = opts, er
	if opts.Listen {
		// Bind before attaching, so a taken port fails fast with nothing attached.
		if a.srv, err = server.Listen(cfg.Web.ListenAddress, cfg.Web.ConfigFile, a.Registry, log); err != nil {
			return nil, err
		}
		if opts.Pprof {
			mountPprof(a.srv.Mux)
		}
	}
	// A bad metric rule file fails fast too (file:line), before the data
	// dir or a privilege is looked at.
	if opts.Alerting && cfg.Rules.IsEnabled() {
		if err := rules.CheckFiles(cfg.Rules); err != nil {
			a.closeServer()
			return nil, err
		}
	}
	if er != nil {
		// Subscribe before the probes start; events wait in the queue
		// until the engine runs.
		er.attach(a)
	}
	return a, nil
}

// Server is the HTTP server (nil without Options.Listen), for verbs that
// mount more handlers.
func (a *Agent) Server() *server.Server { return a.srv }

// Client is what a verb does while the agent runs: read the bus, poll a
// probe, print. It returns when ctx ends or it is done; the agent then
// shuts down.
type Client func(ctx context.Context) error

// Main attaches the probes and runs them with the rule engines, alert
// delivery and the HTTP server until SIGINT or SIGTERM, a failure, or
// client returning (client may be nil). SIGHUP reloads both rule engines
// when the verb runs any. Main closes everything before it returns.
func (a *Agent) Main(client Client) error {
	if err := a.Start(); err != nil {
		a.closeServer()
		return err
	}
	defer a.Close()
	deliver, err := a.startDelivery()
	if err != nil {
		a.closeServer()
		return err
	}
	attrs := []any{"probes", a.Names()}
	if a.srv != nil {
		attrs = append(attrs, "listen", a.srv.Addr())
	}
	if a.er != nil {
		attrs = append(attrs, "event_rules", a.er.engine.Ruleset().Summary())
		for k, f := range a.er.filters {
			attrs = append(attrs, "kernel_filter_"+string(k), f)
		}
	}
	a.Log.Info("vigil started", append(attrs, "startup", a.StartupDuration().Round(time.Millisecond))...)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	if a.srv != nil {
		// The service map, fed by the bus, is served wherever the agent listens.
		smap := servicemap.New(servicemap.DefaultConfig(), a.Registry)
		smapSub := a.Bus.Subscribe("servicemap", 4096, servicemap.Kinds()...)
		defer a.Bus.Unsubscribe(smapSub)
		a.srv.Mux.Handle("GET /api/v1/servicemap", smap.Handler())
		go smap.Run(ctx, smapSub)
		go func() { errc <- a.srv.Serve() }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); errc <- a.Run(ctx) }()
	if a.metricRules != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.metricRules.Run(ctx); err != nil {
				a.Log.Error("metric rules shutdown", "err", err)
			}
		}()
	}
	if a.er != nil {
		go a.er.run(ctx)
	}
	if a.er != nil || a.metricRules != nil {
		go a.reloadOnHUP(ctx)
	}
	clientDone := make(chan error, 1)
	if client != nil {
		go func() { clientDone <- client(ctx) }()
	}

	var runErr error
	select {
	case <-ctx.Done():
		a.Log.Info("shutting down", "signal", context.Cause(ctx))
	case runErr = <-errc:
	case runErr = <-clientDone:
		clientDone <- nil
	}
	stop()
	if client != nil {
		if err := <-clientDone; runErr == nil {
			runErr = err
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a.srv != nil {
		_ = a.srv.Shutdown(shutdownCtx)
	}
	if a.er != nil {
		a.er.wait() // the event-rule engine hands its last alerts to delivery
	}
	wg.Wait() // probes stopped; the metric engine closed its TSDB
	deliver(shutdownCtx)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	_ = os.Stderr.Sync()
	return nil
}

// startDelivery builds the alert dispatcher and the metric-rule engine the
// options ask for and routes event-rule alerts. The returned func stops
// delivery after sending what is queued (and saving state).
func (a *Agent) startDelivery() (func(context.Context), error) {
	var sinks []eventrules.Sink
	var disp *alert.Dispatcher
	var err error
	switch {
	case a.opts.Alerting:
		disp, err = alert.NewFromConfig(a.Cfg.Alerting, os.Stdout, a.Registry, a.Log.With("component", "alert"))
		if err != nil {
			return nil, err
		}
		if a.Cfg.Rules.IsEnabled() {
			a.metricRules, err = rules.New(rules.Options{
				Config:         a.Cfg.Rules,
				Gatherer:       a.Registry,
				Registerer:     a.Registry,
				Dispatcher:     disp,
				ExternalLabels: a.Cfg.Alerting.Labels(),
				Logger:         a.Log.With("component", "rules"),
			})
			if err != nil {
				return nil, err
			}
		}
		if a.srv != nil {
			a.srv.Mux.Handle("GET /api/v1/rules", rules.RulesHandler(a.metricRules))
			a.srv.Mux.Handle("GET /api/v1/alerts", rules.AlertsHandler(a.metricRules, disp))
		}
	case len(a.opts.Alertmanagers) > 0:
		var ns []alert.Notifier
		for _, u := range a.opts.Alertmanagers {
			am, err := alert.NewAlertmanager(u, nil, nil)
			if err != nil {
				return nil, err
			}
			ns = append(ns, am)
		}
		if disp, err = alert.NewDispatcher(alert.Options{Notifiers: ns, Registerer: a.Registry, Logger: a.Log}); err != nil {
			return nil, err
		}
	}
	if disp != nil {
		sinks = append(sinks, disp)
	}
	if a.opts.AlertSink != nil {
		sinks = append(sinks, a.opts.AlertSink)
	}
	if a.er != nil {
		var sink eventrules.Sink = eventrules.Tee(sinks)
		if len(sinks) == 1 {
			sink = sinks[0]
		}
		a.er.setSinks(sink, sink)
	}
	if disp == nil {
		return func(context.Context) {}, nil
	}
	dctx, dcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- disp.Run(dctx) }()
	return func(shutdown context.Context) {
		dcancel()
		select {
		case err := <-done:
			if err != nil {
				a.Log.Error("alert delivery shutdown", "err", err)
			}
		case <-shutdown.Done():
			a.Log.Error("alert delivery did not stop in time")
		}
	}, nil
}

// reloadOnHUP is the one SIGHUP path: it reloads both rule engines.
func (a *Agent) reloadOnHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.Log.Info("SIGHUP: reloading rules")
			a.ReloadRules()
		}
	}
}

// ReloadRules reloads the metric and event rule files; a failure keeps the
// previous rules and is logged, exported and alerted on by each engine.
func (a *Agent) ReloadRules() {
	if a.metricRules != nil {
		_ = a.metricRules.Reload()
	}
	if a.er != nil {
		_ = a.er.loader.Load()
	}
}

// EventRulesSubscription is the event-rule engine's bus subscription (nil
// without event rules), for loss reports.
func (a *Agent) EventRulesSubscription() *event.Subscription {
	if a.er == nil {
		return nil
	}
	return a.er.sub
}

func (a *Agent) closeServer() {
	if a.srv != nil {
		_ = a.srv.Shutdown(context.Background())
	}
}

// Loss is what one probe lost for one reason since it started.
type Loss struct {
	Probe  string `json:"probe"`
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

// Loss reasons.
const (
	// LossRingFull: the kernel found the probe's ring buffer full.
	LossRingFull = "ring_buffer_full"
	// LossQueueFull: the subscriber's queue in user space was full.
	LossQueueFull = "queue_full"
)

// Losses reports, per probe, the events the kernel dropped because the ring
// buffer was full, and the events sub lost because its queue was full
// (counted against the probe when the agent runs one, else against the
// subscriber). Zero counts are left out.
func (a *Agent) Losses(sub *event.Subscription) []Loss {
	var out []Loss
	for i, p := range a.probes {
		o := p.Object()
		if o == nil {
			continue
		}
		// A view counts only the probes whose events it shows (a trace
		// of opens also runs the process probe, to feed the cache).
		if sub != nil && !a.feeds(a.names[i], sub) {
			continue
		}
		if n, err := o.Dropped(); err == nil && n > 0 {
			out = append(out, Loss{Probe: a.names[i], Reason: LossRingFull, Count: n})
		}
	}
	if sub != nil {
		if n := sub.Lost.Load(); n > 0 {
			out = append(out, Loss{Probe: a.queueOwner(sub), Reason: LossQueueFull, Count: n})
		}
	}
	slices.SortFunc(out, func(x, y Loss) int {
		if c := cmpString(x.Probe, y.Probe); c != 0 {
			return c
		}
		return cmpString(x.Reason, y.Reason)
	})
	return out
}

// queueOwner names a subscription's losses after the one running probe whose
// events it takes (a trace of open events also runs the process probe for the
// cache), or after the subscription when several probes feed it.
func (a *Agent) queueOwner(sub *event.Subscription) string {
	var owner string
	for _, n := range a.names {
		if !a.feeds(n, sub) {
			continue
		}
		if owner != "" {
			return sub.Name()
		}
		owner = n
	}
	if owner == "" {
		return sub.Name()
	}
	return owner
}

// feeds reports whether the named probe produces events sub takes, directly
// or as the source of a derived kind sub takes.
func (a *Agent) feeds(name string, sub *event.Subscription) bool {
	spec, ok := probe.Lookup(name)
	if !ok {
		return false
	}
	produces := func(k event.Kind) bool { return slices.Contains(spec.Events, k) }
	for _, k := range schema.Kinds() {
		if sub.Takes(k) && slices.ContainsFunc(schema.Sources(k), produces) {
			return true
		}
	}
	return false
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String is the warning text of one loss.
func (l Loss) String() string {
	what := "ring buffer full in the kernel"
	if l.Reason == LossQueueFull {
		what = "queue full in user space"
	}
	return fmt.Sprintf("%s: %d (%s)", l.Probe, l.Count, what)
}
