// Package config loads vigil's YAML configuration: embedded defaults, a
// strict decoder that names the file and line of every unknown key or wrong
// type, and per-probe sections decoded into the probes' own config types.
package config

import (
	"bytes"
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
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/rules"
)

// DefaultListenAddress is outside 9100-9999, the range the Prometheus
// project has handed out to exporters, and on loopback so a fresh install
// exposes nothing to the network.
const DefaultListenAddress = "127.0.0.1:19400"

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default configuration, as shipped: default.yaml
// with each linked probe's section (its folder's defaults.yaml) in place, so
// a new probe brings its defaults with it.
func DefaultYAML() []byte {
	var b bytes.Buffer
	for _, s := range probe.All() {
		if len(s.DefaultYAML) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", s.Name)
		for _, l := range strings.Split(strings.TrimRight(string(s.DefaultYAML), "\n"), "\n") {
			if l != "" {
				b.WriteString("    " + l)
			}
			b.WriteByte('\n')
		}
	}
	return bytes.Replace(defaultYAML, []byte(probesMarker), b.Bytes(), 1)
}

// probesMarker is where DefaultYAML puts the probes' sections.
const probesMarker = "  # @probes@\n"

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
	// L7 configures the protocol parsers fed by the l7 probe.
	L7 L7 `yaml:"l7"`

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

// L7 configures the protocol parsers (derivers) fed by the l7 probe.
type L7 struct {
	HTTP httpflow.Config `yaml:"http"`
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
	if err := decodeStrict(DefaultYAML(), cfg); err != nil {
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
			if line := nearestLine(&doc, e.path); line > 0 {
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

// nearestLine is the line of path in the user's file or, when the file
// does not set that key (the bad value is a combination with a default),
// of the closest enclosing key it does set.
func nearestLine(doc *yaml.Node, path string) int {
	for {
		if line := lineOf(doc, path); line > 0 {
			return line
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
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

// derivedDefaults is implemented by probe configs with knobs whose default
// follows another knob (open's ringbuf_wakeup_bytes follows ringbuf_size):
// after decoding, each such knob the user's file did not set is derived
// from the values in force, instead of keeping the embedded default that
// was computed for the embedded default of the other knob.
type derivedDefaults interface {
	DeriveDefaults(userSet func(key string) bool)
}

// decodeProbes decodes every probe's section, defaults first, then the
// file's section over them.
func (c *Config) decodeProbes(defaults *yaml.Node) error {
	c.ProbeConfigs = map[string]probe.Config{}
	sections := map[string][]*yaml.Node{}
	user := map[string]userSection{}
	for _, n := range []*yaml.Node{defaults, &c.Probes} {
		// Empty: no section given, or a binary that links no probe.
		if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
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
			if n != defaults {
				user[name] = userSection{line: n.Content[i].Line, node: n.Content[i+1]}
			}
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
		us, touched := user[spec.Name]
		if d, ok := pc.(derivedDefaults); ok {
			d.DeriveDefaults(func(key string) bool { return us.keyLine(key) > 0 })
		}
		if err := pc.Validate(); err != nil {
			if !touched {
				// Only the embedded defaults feed this section.
				return fmt.Errorf("embedded default config: probes.%s.%w", spec.Name, err)
			}
			return fmt.Errorf("line %d: probes.%s.%w", us.errorLine(err), spec.Name, err)
		}
		c.ProbeConfigs[spec.Name] = pc
	}
	return nil
}

// userSection is a probe's section in the user's file.
type userSection struct {
	line int        // of the probe's name
	node *yaml.Node // its settings
}

// keyLine is the line where the section sets key, 0 if it does not.
func (u userSection) keyLine(key string) int {
	n := u.node
	for j := 0; n != nil && n.Kind == yaml.MappingNode && j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == key {
			return n.Content[j].Line
		}
	}
	return 0
}

// errorLine picks the line of the user's file a probe's Validate error
// points at: the key the error names ("ringbuf_size: ...") if the user set
// it; else the first knob the user set that the message mentions (the other
// half of a bad combination); else the probe's own line.
func (u userSection) errorLine(err error) int {
	msg := err.Error()
	key, _, _ := strings.Cut(msg, ":")
	if l := u.keyLine(key); l > 0 {
		return l
	}
	n := u.node
	for j := 0; n != nil && n.Kind == yaml.MappingNode && j+1 < len(n.Content); j += 2 {
		if mentions(msg, n.Content[j].Value) {
			return n.Content[j].Line
		}
	}
	return u.line
}

// mentions reports whether msg names key as a whole word.
func mentions(msg, key string) bool {
	word := func(b byte) bool {
		return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
	}
	for i := 0; ; {
		j := strings.Index(msg[i:], key)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(key)
		if (j == 0 || !word(msg[j-1])) && (end == len(msg) || !word(msg[end])) {
			return true
		}
		i = j + 1
	}
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
	for _, e := range c.L7.HTTP.Validate() {
		errs = append(errs, fieldError{"l7.http." + e.Path, e.Msg})
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
