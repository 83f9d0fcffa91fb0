package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/eventrules"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/rulewatch"
	"github.com/vigilproject/vigil/internal/schema"
)

// eventRulesInternal is the dispatcher source of the event engine's own
// alert (a failed reload).
const eventRulesInternal = "event-rules-internal"

// eventRules is the event-rule engine of a running agent.
type eventRules struct {
	cfg    eventrules.Config
	engine *eventrules.Engine
	loader *eventrules.Loader
	kinds  []event.Kind
	log    *slog.Logger
	sub    *event.Subscription
	done   chan struct{}
	// filters are the kernel filters pushed into probes at start-up, by kind.
	filters map[event.Kind][]string

	mu       sync.Mutex
	sink     eventrules.Sink
	internal eventrules.Sink // receives the reload-failed alert (nil: none)
	failed   alert.Alert
}

// loadEventRules loads the embedded pack and the configured files (a bad
// file is fatal at start-up, with its file:line). It returns nil when
// neither is configured.
func loadEventRules(cfg *config.Config, log *slog.Logger) (*eventRules, error) {
	patterns := cfg.EventRules.Patterns()
	if len(patterns) == 0 {
		return nil, nil
	}
	// The same host label as every other alert (alerting.host, else the hostname).
	host := cfg.Alerting.Labels()["host"]
	er := &eventRules{cfg: cfg.EventRules, log: log, filters: map[event.Kind][]string{}}
	er.engine = eventrules.NewEngine(nil, eventrules.SinkFunc(func(string, []alert.Alert) {}))
	er.loader = &eventrules.Loader{Patterns: patterns, Opts: cfg.EventRules.Options(host), Engine: er.engine, Log: log}
	if err := er.loader.Load(); err != nil {
		return nil, fmt.Errorf("event rules:\n%w", err)
	}
	er.kinds = eventKinds(er.engine.Ruleset())
	er.loader.OnLoad = er.reloaded
	er.loader.OnFailure = er.reloadFailed
	return er, nil
}

// narrow offers each probe that will run the kernel filter the rules allow
// for its kinds, through the probe's Narrow hook.
func (er *eventRules) narrow(cfg *config.Config, probes []string) {
	rs := er.engine.Ruleset()
	for _, n := range probes {
		spec, ok := probe.Lookup(n)
		if !ok || spec.Narrow == nil {
			continue
		}
		for _, k := range spec.Events {
			prefixes, pids, ok := rs.KernelFilter(k)
			if !ok {
				continue
			}
			if spec.Narrow(cfg.ProbeConfigs[n], probe.KernelFilter{Kind: k, PathPrefixes: prefixes, PIDs: pids}) {
				er.filters[k] = prefixes
				er.log.Debug("events filtered in the kernel to what the event rules need", "probe", n, "kind", k, "path_prefixes", prefixes, "pids", pids)
			}
		}
	}
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

// eventKinds is what the ruleset needs from the bus: its kinds, plus exit
// (the process cache and sequence expiry need it).
func eventKinds(rs *eventrules.Ruleset) []event.Kind {
	kinds := rs.Kinds()
	if !slices.Contains(kinds, event.KindExit) && len(rs.Sequences) > 0 {
		kinds = append(kinds, event.KindExit)
	}
	return kinds
}

// probesFor returns the probes that produce the kinds (a derived kind counts
// as the kinds it is derived from), and the kinds no probe in this build
// produces.
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

// probes adds the probes the rules need to base. A probe that is off by
// default (l7) is switched on only by rules of the user's files: the
// embedded pack's rules on its kinds stay quiet until the config enables it.
func (er *eventRules) probes(base []string) []string {
	need, missing := probesFor(er.kinds)
	if len(missing) > 0 {
		er.log.Warn("event rules need event kinds no probe in this build produces; those rules cannot match", "kinds", missing)
	}
	userNeed, _ := probesFor(userKinds(er.engine.Ruleset()))
	out := slices.Clone(base)
	for _, n := range need {
		if spec, ok := probe.Lookup(n); ok && !spec.DefaultEnabled && !slices.Contains(userNeed, n) && !slices.Contains(out, n) {
			er.log.Debug("probe off by default not switched on for the embedded event rules", "probe", n)
			continue
		}
		if !slices.Contains(out, n) {
			er.log.Debug("probe switched on for event rules", "probe", n)
			out = append(out, n)
		}
	}
	return out
}

// userKinds are the event kinds of the rules and sequences from the user's
// files (not the embedded pack).
func userKinds(rs *eventrules.Ruleset) []event.Kind {
	var out []event.Kind
	add := func(file string, k event.Kind) {
		if !strings.HasPrefix(file, eventrules.BuiltinPrefix) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, r := range rs.Rules {
		add(r.File, r.Kind)
	}
	for _, s := range rs.Sequences {
		for _, st := range s.Steps {
			add(s.File, st.Kind)
		}
	}
	return out
}

// attach subscribes to the bus and registers metrics; call before the
// probes start so no event is missed.
func (er *eventRules) attach(a *Agent) {
	er.engine.SetProcs(a.Procs)
	a.Registry.MustRegister(er.engine.Collectors()...)
	for k, f := range er.engine.Ruleset().Pushdown() {
		er.log.Debug("kernel filter the rules allow", "kind", k, "path_prefixes", f.PathPrefixes, "pids", f.PIDs, "cgroup_ids", f.CgroupIDs)
	}
	er.sub = a.Bus.Subscribe("event-rules", er.cfg.QueueSize, er.kinds...)
}

// setSinks sets where alerts go (sink) and where the reload-failed alert
// goes (internal, may be nil); call before run.
func (er *eventRules) setSinks(sink eventrules.Sink, internal eventrules.Sink) {
	er.engine.SetSink(sink)
	er.mu.Lock()
	er.sink, er.internal = sink, internal
	er.mu.Unlock()
}

// reloadFailed raises VigilRuleReloadFailed{engine="event"} until a load
// succeeds, like the metric engine does for its files.
func (er *eventRules) reloadFailed(err error) {
	er.mu.Lock()
	defer er.mu.Unlock()
	if er.internal == nil {
		return
	}
	if er.failed.StartsAt.IsZero() {
		er.failed.StartsAt = time.Now()
	}
	er.failed.Labels = map[string]string{"alertname": rulewatch.FailedAlertName, "severity": "warning", "engine": rulewatch.EngineEvent}
	er.failed.Annotations = map[string]string{
		"summary":     "vigil could not reload its event rule files; the previous rules are still evaluated.",
		"description": err.Error(),
	}
	er.internal.Send(eventRulesInternal, []alert.Alert{er.failed})
}

func (er *eventRules) reloaded(rs *eventrules.Ruleset) {
	for k, filter := range er.filters {
		if p, _, ok := rs.KernelFilter(k); !ok || !coveredBy(p, filter) {
			er.log.Warn("reloaded event rules match events outside the kernel filter set at start-up; restart to widen it", "kind", k, "filter", filter)
		}
	}
	for _, k := range eventKinds(rs) {
		if !slices.Contains(er.kinds, k) {
			er.log.Warn("reloaded event rules need an event kind the agent was not started with; restart to enable it", "kind", k)
		}
	}
	er.mu.Lock()
	defer er.mu.Unlock()
	if er.internal != nil && !er.failed.StartsAt.IsZero() {
		resolved := er.failed
		resolved.EndsAt = time.Now()
		er.internal.Send(eventRulesInternal, []alert.Alert{resolved})
		er.failed = alert.Alert{}
	}
}

// run evaluates events and polls the rule files until ctx ends. A reload
// that needs event kinds or paths the running probes do not produce is
// applied, and the gap is logged.
func (er *eventRules) run(ctx context.Context) {
	er.done = make(chan struct{})
	defer close(er.done)
	go er.loader.Watch(ctx, er.cfg.WatchInterval, nil)
	_ = er.engine.Run(ctx, er.sub.C())
}

// wait returns when run has flushed the last alerts to delivery.
func (er *eventRules) wait() {
	if er.done != nil {
		<-er.done
	}
}
