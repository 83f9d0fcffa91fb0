// Package probe defines the contract every probe fulfils and the registry
// that lists them. A probe is one folder under internal/probe/ that calls
// Register from an init function, plus one import line in probe/all.
package probe

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/proc"
	"github.com/vigilproject/vigil/internal/schema"
)

// Probe is a set of BPF programs plus the user-space code that turns what
// they report into events and metrics.
type Probe interface {
	// Start loads and attaches the BPF programs and registers the probe's
	// metrics. On error nothing stays attached.
	Start(env *Env) error
	// Run consumes kernel data until ctx is done.
	Run(ctx context.Context) error
	// Object is the loaded BPF object, for self-metrics and `vigil features`.
	Object() *kernel.Object
	// Close detaches everything.
	Close() error
}

// Env is what the agent gives a probe.
type Env struct {
	Log        *slog.Logger
	Registerer prometheus.Registerer
	Bus        *event.Bus
	Procs      *proc.Cache
	// DisabledHooks are hook kinds the operator ruled out (kernel.disabled_hooks).
	DisabledHooks []kernel.HookKind
	// LabelLimit caps the distinct values of a high-cardinality label.
	LabelLimit int
}

// Spec describes a probe to the registry.
type Spec struct {
	Name           string
	Help           string
	DefaultEnabled bool
	// Events lists the event kinds the probe can produce; each must be
	// registered in the event schema (schema.MustRegister returns the kind,
	// schema.Names lists them), which describes its fields, docs and columns.
	Events []event.Kind
	// DefaultYAML is the probe's commented section of the embedded default
	// config, kept next to the probe as defaults.yaml (`vigil config default`
	// shows it under probes.<name>). It must decode to NewConfig's values.
	DefaultYAML []byte
	// NewConfig returns a pointer to the probe's config with defaults set;
	// the agent's config file decodes into it strictly.
	NewConfig func() Config
	// New builds the probe from its validated config.
	New func(cfg Config) (Probe, error)
	// Narrow, when set, narrows the in-kernel filter in cfg to f, the
	// events of one of the probe's kinds that the event rules can match. It
	// leaves a config that sets a filter of its own alone (other consumers
	// rely on it) and reports whether it narrowed.
	Narrow func(cfg Config, f KernelFilter) bool
}

// KernelFilter is what the event rules can match of one event kind: only
// these path prefixes and pids (empty: any).
type KernelFilter struct {
	Kind         event.Kind
	PathPrefixes []string
	PIDs         []uint32
}

// Config is a probe's configuration section.
type Config interface {
	// Validate reports semantic errors (ranges, combinations).
	Validate() error
	// IsEnabled tells whether the probe should run.
	IsEnabled() bool
}

var (
	mu    sync.Mutex
	specs = map[string]Spec{}
)

// Register adds a probe; it panics on a duplicate name or an event kind
// missing from the schema registry, programming errors.
func Register(s Spec) {
	for _, k := range s.Events {
		if _, ok := schema.Lookup(k); !ok {
			panic(fmt.Sprintf("probe %q: event kind %q is not registered in the schema (internal/schema)", s.Name, k))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := specs[s.Name]; dup {
		panic(fmt.Sprintf("probe %q registered twice", s.Name))
	}
	specs[s.Name] = s
}

// Lookup returns the named probe's spec.
func Lookup(name string) (Spec, bool) {
	mu.Lock()
	defer mu.Unlock()
	s, ok := specs[name]
	return s, ok
}

// All returns every registered probe, sorted by name.
func All() []Spec {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Spec, 0, len(specs))
	for _, s := range specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Spec) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Names returns the registered probe names, sorted.
func Names() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.Name)
	}
	return out
}
