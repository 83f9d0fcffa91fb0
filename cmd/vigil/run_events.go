package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/eventrules"
	"github.com/vigilproject/vigil/internal/probe"
	openprobe "github.com/vigilproject/vigil/internal/probe/open"
	"github.com/vigilproject/vigil/internal/schema"
)

// eventRuleFlags are the `vigil run` flags for event rules and their
// delivery.
type eventRuleFlags struct {
	files         []string
	alertmanagers []string
}

func registerEventRuleFlags(cmd *kingpin.CmdClause) *eventRuleFlags {
	f := &eventRuleFlags{}
	cmd.Flag("event-rules.file", "Event rule file or glob (repeatable; added to event_rules.files).").StringsVar(&f.files)
	cmd.Flag("alertmanager.url", "Alertmanager to send alerts to through API v2 (repeatable; added to alerting.alertmanagers), e.g. http://127.0.0.1:9093.").StringsVar(&f.alertmanagers)
	return f
}

func (f *eventRuleFlags) apply(cfg *config.Config) {
	if f == nil {
		return
	}
	cfg.EventRules.Files = append(cfg.EventRules.Files, f.files...)
	for _, u := range f.alertmanagers {
		cfg.Alerting.Alertmanagers = append(cfg.Alerting.Alertmanagers, alert.Endpoint{URL: u})
	}
}

// eventRules is the event-rule engine of a running agent.
type eventRules struct {
	cfg    eventrules.Config
	engine *eventrules.Engine
	loader *eventrules.Loader
	kinds  []event.Kind
	log    *slog.Logger
	sub    *event.Subscription
	done   chan struct{}
	// openFilter is the path-prefix filter pushed into the open probe.
	openFilter []string
}

// coveredBy reports whether every prefix in p starts with one in by.
func coveredBy(p, by []string) bool {
	for _, x := range p {
		if !slices.ContainsFunc(by, func(b string) bool { return strings.HasPrefix(x, b) }) {
			return false
		}
	}
	return true
}

// setupEventRules loads the configured rule files (a bad file is fatal at
// start-up, with its file:line). It returns nil when no files are set.
func setupEventRules(cfg *config.Config, log *slog.Logger) (*eventRules, error) {
	if len(cfg.EventRules.Files) == 0 {
		return nil, nil
	}
	// The same host label as every other alert (alerting.host, else the hostname).
	host := cfg.Alerting.Labels()["host"]
	er := &eventRules{cfg: cfg.EventRules, log: log}
	er.engine = eventrules.NewEngine(nil, eventrules.SinkFunc(func(string, []alert.Alert) {}))
	er.loader = &eventrules.Loader{Patterns: cfg.EventRules.Files, Opts: cfg.EventRules.Options(host), Engine: er.engine, Log: log}
	if err := er.loader.Load(); err != nil {
		return nil, fmt.Errorf("event rules:\n%w", err)
	}
	er.kinds = eventKinds(er.engine.Ruleset())
	er.pushdown(cfg)
	return er, nil
}

// pushdown narrows the open probe's in-kernel filter to what the rules can
// match, when the config sets no open filter of its own (then the rules are
// the only consumer of open events that the filter shapes).
func (er *eventRules) pushdown(cfg *config.Config) {
	oc, ok := cfg.ProbeConfigs["open"].(*openprobe.Config)
	if !ok || len(oc.PathPrefixes) > 0 || len(oc.PIDs) > 0 || oc.Comm != "" || len(oc.Cgroups) > 0 || len(oc.Containers) > 0 {
		return
	}
	prefixes, pids, ok := er.engine.Ruleset().KernelFilter(event.KindOpen)
	if !ok {
		return
	}
	oc.PathPrefixes, oc.PIDs = prefixes, pids
	er.openFilter = prefixes
	er.log.Info("open events filtered in the kernel to what the event rules need", "path_prefixes", prefixes, "pids", pids)
}

// eventKinds is what the ruleset needs from the bus: its kinds, plus exit
// (the process cache and sequence expiry need it).
func eventKinds(rs *eventrules.Ruleset) []event.Kind {
	kinds := rs.Kinds()
	if !slices.Contains(kinds, event.KindExit) && len(rs.Sequences) > 0 {
		kinds = append(kinds, event.KindExit)
	}
	return kinds
}

// probesFor returns the probes that produce the kinds (derived kinds count
// as the kinds they come from), and the kinds no probe in this build produces.
func probesFor(kinds []event.Kind) (names []string, missing []event.Kind) {
	for _, k := range schema.Sources(kinds...) {
		found := false
		for _, s := range probe.All() {
			if slices.Contains(s.Events, k) {
				found = true
				if !slices.Contains(names, s.Name) {
					names = append(names, s.Name)
				}
			}
		}
		if !found {
			missing = append(missing, k)
		}
	}
	return names, missing
}

// probes adds the probes the rules need to the enabled ones (nil: the
// agent's default, the enabled probes).
func (er *eventRules) probes(cfg *config.Config) []string {
	if er == nil {
		return nil
	}
	enabled := cfg.EnabledProbes()
	need, missing := probesFor(er.kinds)
	if len(missing) > 0 {
		er.log.Warn("event rules need event kinds no probe in this build produces; those rules cannot match", "kinds", missing)
	}
	out := slices.Clone(enabled)
	for _, n := range need {
		if !slices.Contains(out, n) {
			er.log.Info("probe switched on for event rules", "probe", n)
			out = append(out, n)
		}
	}
	return out
}

// setSink sets where alerts go; call before run.
func (er *eventRules) setSink(sink eventrules.Sink) {
	if er != nil {
		er.engine.SetSink(sink)
	}
}

// attach subscribes to the bus and registers metrics; call before a.Start
// so no event is missed.
func (er *eventRules) attach(a *agent.Agent) {
	if er == nil {
		return
	}
	er.engine.SetProcs(a.Procs)
	a.Registry.MustRegister(er.engine.Collectors()...)
	for k, f := range er.engine.Ruleset().Pushdown() {
		er.log.Debug("kernel filter the rules allow", "kind", k, "path_prefixes", f.PathPrefixes, "pids", f.PIDs, "cgroup_ids", f.CgroupIDs)
	}
	er.sub = a.Bus.Subscribe("event-rules", er.cfg.QueueSize, er.kinds...)
}

// run evaluates events and reloads the rules on SIGHUP and file changes
// until ctx ends. A reload that needs event kinds the running probes do
// not produce is applied, and the gap is logged.
func (er *eventRules) run(ctx context.Context) {
	if er == nil {
		return
	}
	er.done = make(chan struct{})
	defer close(er.done)
	er.loader.OnLoad = func(rs *eventrules.Ruleset) {
		if er.openFilter != nil {
			if p, _, ok := rs.KernelFilter(event.KindOpen); !ok || !coveredBy(p, er.openFilter) {
				er.log.Warn("reloaded event rules match open events outside the kernel filter set at start-up; restart to widen it", "filter", er.openFilter)
			}
		}
		for _, k := range eventKinds(rs) {
			if !slices.Contains(er.kinds, k) {
				er.log.Warn("reloaded event rules need an event kind the agent was not started with; restart to enable it", "kind", k)
			}
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go er.loader.Watch(ctx, er.cfg.WatchInterval, hup)
	_ = er.engine.Run(ctx, er.sub.C())
}

// wait returns when run has flushed the last alerts to delivery.
func (er *eventRules) wait() {
	if er != nil && er.done != nil {
		<-er.done
	}
}

// newDispatcher builds a dispatcher for `vigil trace alerts --alertmanager.url`.
func newDispatcher(urls []string, a *agent.Agent, log *slog.Logger) (*alert.Dispatcher, error) {
	var ns []alert.Notifier
	for _, u := range urls {
		am, err := alert.NewAlertmanager(u, nil, nil)
		if err != nil {
			return nil, err
		}
		ns = append(ns, am)
	}
	return alert.NewDispatcher(alert.Options{Notifiers: ns, Registerer: a.Registry, Logger: log})
}
