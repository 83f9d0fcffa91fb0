// Package config loads vigil's YAML configuration: embedded defaults, a
// strict decoder that names the file and line of every unknown key or wrong
// type, and per-probe sections decoded into the probes' own config types.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/eventrules"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/rules"
)

// DefaultListenAddress is outside 9100-9999, the range the Prometheus
// project has handed out to exporters, and on loopback so a fresh install
// exposes nothing to the network.
const DefaultListenAddress = "127.0.0.1:19400"

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default configuration, as shipped.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Config is the whole agent configuration.
type Config struct {
	Log          Log          `yaml:"log"`
	Web          Web          `yaml:"web"`
	Kernel       Kernel       `yaml:"kernel"`
	Metrics      Metrics      `yaml:"metrics"`
	ProcessCache ProcessCache `yaml:"process_cache"`
	Probes       yaml.Node    `yaml:"probes"`
	Rules        rules.Config `yaml:"rules"`
	Alerting     alert.Config `yaml:"alerting"`
	// EventRules configures CEL event and sequence rules on the event stream.
	EventRules eventrules.Config `yaml:"event_rules"`

	// ProbeConfigs holds each registered probe's decoded section.
	ProbeConfigs map[string]probe.Config `yaml:"-"`
	// Source names where the config came from, for messages.
	Source string `yaml:"-"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // logfmt or json
}

// Web configures the HTTP endpoint.
type Web struct {
	ListenAddress string `yaml:"listen_address"`
	// ConfigFile is a Prometheus exporter-toolkit web config (TLS, basic auth).
	ConfigFile string `yaml:"config_file"`
}

// Kernel configures how programs are attached.
type Kernel struct {
	// DisabledHooks rules out hook kinds, e.g. [tp_btf] on a kernel whose
	// BTF-typed tracepoints misbehave; programs fall back to the next kind.
	DisabledHooks []string `yaml:"disabled_hooks"`
	// BPFStats enables kernel run-time accounting of BPF programs.
	BPFStats bool `yaml:"bpf_stats"`
}

// Metrics configures metric cardinality.
type Metrics struct {
	// LabelLimit caps the distinct values of labels that could explode
	// (executable, container, ...); the rest fold into "other".
	LabelLimit int `yaml:"label_limit"`
}

// ProcessCache bounds the user-space process table.
type ProcessCache struct {
	MaxEntries int `yaml:"max_entries"`
}

// Default returns the embedded default configuration.
func Default() (*Config, error) {
	// An empty file over the defaults: the defaults may name probes this
	// binary does not link (a probe's own tests), which only a file may not.
	return Parse(nil, "<embedded default>")
}

// Load reads a config file, layered over the embedded default: keys the
// file leaves out keep their default values.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes data (named source in errors) over the embedded defaults.
func Parse(data []byte, source string) (*Config, error) {
	cfg := &Config{}
	if err := decodeStrict(defaultYAML, cfg); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	defaults := cfg.Probes
	cfg.Probes = yaml.Node{}
	if err := decodeStrict(data, cfg); err != nil {
		return nil, withSource(source, err)
	}
	cfg.Source = source
	if err := cfg.decodeProbes(&defaults); err != nil {
		return nil, withSource(source, err)
	}
	if errs := cfg.validate(); len(errs) > 0 {
		var doc yaml.Node
		_ = yaml.Unmarshal(data, &doc)
		out := make([]error, len(errs))
		for i, e := range errs {
			if line := lineOf(&doc, e.path); line > 0 {
				out[i] = fmt.Errorf("%s: line %d: %s: %s", source, line, e.path, e.msg)
			} else {
				out[i] = fmt.Errorf("%s: %s: %s", source, e.path, e.msg)
			}
		}
		return nil, errors.Join(out...)
	}
	return cfg, nil
}

type fieldError struct{ path, msg string }

// lineOf finds the line of a dotted key path in a YAML document, 0 if the
// file does not set it (the bad value then came from the defaults).
func lineOf(doc *yaml.Node, path string) int {
	if len(doc.Content) == 0 {
		return 0
	}
	n := doc.Content[0]
	line := 0
	for _, key := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return 0
		}
	}
	return line
}

func decodeStrict(data []byte, v any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil // empty file: all defaults
	}
	root := doc.Content[0]
	if err := checkKnown(root, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	return typeErrors(root.Decode(v), root, "")
}

// typeErrors rewrites yaml's multi-line "unmarshal errors" into one error
// per wrong value, each naming its line and key path:
// "line 2: metrics.label_limit: cannot unmarshal !!str `lots` into int".
func typeErrors(err error, root *yaml.Node, prefix string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	out := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		var line int
		if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
			if path := keyAtLine(root, line, prefix); path != "" {
				_, rest, _ := strings.Cut(msg, ": ")
				msg = fmt.Sprintf("line %d: %s: %s", line, path, rest)
			}
		}
		out = append(out, errors.New(msg))
	}
	return errors.Join(out...)
}

// keyAtLine returns the dotted path of the key whose value starts on line.
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := join(prefix, k.Value)
			if v.Line == line && v.Kind == yaml.ScalarNode {
				return path
			}
			if p := keyAtLine(v, line, path); p != "" {
				return p
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Line == line && c.Kind == yaml.ScalarNode {
				return prefix + "[]"
			}
			if p := keyAtLine(c, line, prefix+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// decodeProbes decodes every probe's section, defaults first, then the
// file's section over them.
func (c *Config) decodeProbes(defaults *yaml.Node) error {
	c.ProbeConfigs = map[string]probe.Config{}
	sections := map[string][]*yaml.Node{}
	for _, n := range []*yaml.Node{defaults, &c.Probes} {
		if n.Kind == 0 {
			continue
		}
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: probes must be a mapping of probe name to settings", n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			name := n.Content[i].Value
			if _, ok := probe.Lookup(name); !ok {
				if n == defaults {
					// The embedded defaults describe every probe; a binary
					// (a probe's test) may link only some of them.
					continue
				}
				return fmt.Errorf("line %d: unknown probe %q (known: %s)", n.Content[i].Line, name, strings.Join(probe.Names(), ", "))
			}
			sections[name] = append(sections[name], n.Content[i+1])
		}
	}
	for _, spec := range probe.All() {
		pc := spec.NewConfig()
		for _, sec := range sections[spec.Name] {
			if sec.Kind == yaml.ScalarNode && sec.Tag == "!!null" {
				continue
			}
			if err := checkKnown(sec, reflect.TypeOf(pc).Elem(), "probes."+spec.Name); err != nil {
				return err
			}
			if err := sec.Decode(pc); err != nil {
				return typeErrors(err, sec, "probes."+spec.Name)
			}
		}
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("line %d: probes.%s.%w", validateLine(sections[spec.Name], err), spec.Name, err)
		}
		c.ProbeConfigs[spec.Name] = pc
	}
	return nil
}

func (c *Config) validate() []fieldError {
	var errs []fieldError
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fieldError{"log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level)})
	}
	switch c.Log.Format {
	case "logfmt", "json":
	default:
		errs = append(errs, fieldError{"log.format", fmt.Sprintf("%q is not one of logfmt, json", c.Log.Format)})
	}
	for _, h := range c.Kernel.DisabledHooks {
		if !slices.Contains(knownHooks, kernel.HookKind(h)) {
			errs = append(errs, fieldError{"kernel.disabled_hooks", fmt.Sprintf("unknown hook kind %q (known: tp_btf, raw_tp, tracepoint, fentry, kprobe, uprobe, lsm, cgroup_skb)", h)})
		}
	}
	if c.Metrics.LabelLimit < 1 {
		errs = append(errs, fieldError{"metrics.label_limit", fmt.Sprintf("%d must be at least 1", c.Metrics.LabelLimit)})
	}
	if c.ProcessCache.MaxEntries < 128 {
		errs = append(errs, fieldError{"process_cache.max_entries", fmt.Sprintf("%d must be at least 128", c.ProcessCache.MaxEntries)})
	}
	for _, e := range c.Rules.Validate() {
		errs = append(errs, fieldError{"rules." + e.Path, e.Msg})
	}
	for _, e := range c.Alerting.Validate() {
		errs = append(errs, fieldError{"alerting." + e.Path, e.Msg})
	}
	if err := c.EventRules.Validate(); err != nil {
		errs = append(errs, fieldError{"event_rules", err.Error()})
	}
	return errs
}

var knownHooks = []kernel.HookKind{kernel.TpBTF, kernel.RawTP, kernel.Tracepoint, kernel.Fentry, kernel.Kprobe, kernel.Uprobe, kernel.LSM, kernel.CgroupSKB}

// DisabledHooks returns kernel.disabled_hooks as hook kinds.
func (c *Config) DisabledHooks() []kernel.HookKind {
	out := make([]kernel.HookKind, len(c.Kernel.DisabledHooks))
	for i, h := range c.Kernel.DisabledHooks {
		out[i] = kernel.HookKind(h)
	}
	return out
}

// EnabledProbes returns the names of the probes the config turns on.
func (c *Config) EnabledProbes() []string {
	var out []string
	for _, s := range probe.All() {
		if c.ProbeConfigs[s.Name].IsEnabled() {
			out = append(out, s.Name)
		}
	}
	return out
}

// validateLine finds the line of the key a probe's Validate error names
// ("ringbuf_size: ..."), in the last section that sets it; else the line of
// the last section.
func validateLine(sections []*yaml.Node, err error) int {
	key, _, _ := strings.Cut(err.Error(), ":")
	for i := len(sections) - 1; i >= 0; i-- {
		sec := sections[i]
		for j := 0; sec.Kind == yaml.MappingNode && j+1 < len(sec.Content); j += 2 {
			if sec.Content[j].Value == key {
				return sec.Content[j].Line
			}
		}
	}
	if len(sections) > 0 {
		return sections[len(sections)-1].Line
	}
	return 0
}

// withSource prefixes every error of a joined error with the file name, so
// each line of the message says where to look.
func withSource(source string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = fmt.Errorf("%s: %w", source, e)
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", source, err)
}
