package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// FileError is one problem in a rule file, located by line.
type FileError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Parsed is a rule file after anomaly expansion.
type Parsed struct {
	Groups *rulefmt.RuleGroups
	// Expanded is the file as standard Prometheus YAML; equal to the input
	// when the file uses no vigil shorthand.
	Expanded []byte
	// UsesShorthand reports whether any rule used `anomaly:`.
	UsesShorthand bool
}

// BuiltinFile names the embedded agent-health rules (a copy of
// deploy/rules/metrics/vigil-agent.yml) wherever a file name is shown.
const BuiltinFile = "builtin:vigil-agent.yml"

//go:embed builtin.yml
var builtinYAML []byte

// LoadFile reads and parses one rule file; see Parse. BuiltinFile loads
// the embedded rules.
func LoadFile(path string) (*Parsed, []error) {
	if path == BuiltinFile {
		return Parse(path, builtinYAML)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{err}
	}
	return Parse(path, b)
}

// mirror of rulefmt's types plus the shorthand, decoded strictly first so
// unknown fields and type errors are reported against the original lines.
type fileYAML struct {
	Groups []groupYAML `yaml:"groups"`
}

type groupYAML struct {
	Name        string            `yaml:"name"`
	Interval    model.Duration    `yaml:"interval,omitempty"`
	QueryOffset *model.Duration   `yaml:"query_offset,omitempty"`
	Limit       int               `yaml:"limit,omitempty"`
	Rules       []ruleYAML        `yaml:"rules"`
	Labels      map[string]string `yaml:"labels,omitempty"`
}

type ruleYAML struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           model.Duration    `yaml:"for,omitempty"`
	KeepFiringFor model.Duration    `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
	Anomaly       *Anomaly          `yaml:"anomaly,omitempty"`
}

// Parse validates a rule file in Prometheus format, expanding `anomaly:`
// rules to PromQL first. Every error names the file and, where it can be
// located, the line: YAML syntax, unknown fields, bad PromQL, bad templates
// (including unknown template functions), bad durations.
func Parse(name string, content []byte) (*Parsed, []error) {
	ferr := func(line int, format string, a ...any) error {
		return &FileError{File: name, Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, yamlErrors(name, err)
	}
	var strict fileYAML
	dec := yaml.NewDecoder(strings.NewReader(string(content)))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) {
		if !yamlLine.MatchString(err.Error()) {
			// Errors from custom decoders (durations) carry no line.
			return nil, []error{ferr(fieldLine(&doc), "%v", err)}
		}
		return nil, yamlErrors(name, err)
	}

	// Walk groups and rules: remember where each rule starts and expand
	// shorthands in place.
	idx := index{groups: map[string]int{}}
	shorthand := false
	var errs []error
	for gi, g := range seqItems(mapValue(docRoot(&doc), "groups")) {
		idx.groupLines = append(idx.groupLines, g.Line)
		if n := mapValue(g, "name"); n != nil {
			idx.groups[n.Value] = gi
		}
		var rls []*yaml.Node
		for _, r := range seqItems(mapValue(g, "rules")) {
			rls = append(rls, r)
			an := mapKey(r, "anomaly")
			if an == nil {
				continue
			}
			shorthand = true
			if err := expandAnomaly(r, an); err != nil {
				errs = append(errs, ferr(an.Line, "group %q, rule %q: %v", scalar(mapValue(g, "name")), ruleName(r), err))
			}
		}
		idx.rules = append(idx.rules, rls)
	}
	if len(errs) > 0 {
		return nil, errs
	}

	expanded := content
	lineOf := func(l int) int { return l }
	if shorthand {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return nil, []error{ferr(0, "%v", err)}
		}
		expanded = buf.Bytes()
		lineOf = lineMapper(&doc, expanded)
	}

	groups, perrs := rulefmt.Parse(expanded, false, model.UTF8Validation)
	for _, e := range perrs {
		errs = append(errs, locate(name, e, idx, lineOf))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &Parsed{Groups: groups, Expanded: expanded, UsesShorthand: shorthand}, nil
}

// fieldLine finds the first group or rule field that fails to decode on its
// own, for errors that yaml reports without a position.
func fieldLine(doc *yaml.Node) int {
	bad := func(m *yaml.Node, into func() any, skip string) int {
		for i := 0; m != nil && i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == skip {
				continue
			}
			one := &yaml.Node{Kind: yaml.MappingNode, Content: m.Content[i : i+2]}
			if one.Decode(into()) != nil {
				return m.Content[i].Line
			}
		}
		return 0
	}
	for _, g := range seqItems(mapValue(docRoot(doc), "groups")) {
		if l := bad(g, func() any { return &groupYAML{} }, "rules"); l > 0 {
			return l
		}
		for _, r := range seqItems(mapValue(g, "rules")) {
			if l := bad(r, func() any { return &ruleYAML{} }, ""); l > 0 {
				return l
			}
		}
	}
	return 0
}

// index locates groups and rules in the original document.
type index struct {
	groups     map[string]int
	groupLines []int
	rules      [][]*yaml.Node
}

var lineColPrefix = regexp.MustCompile(`^(\d+):(\d+): (?:\d+:\d+: )?`)

// locate turns an error from rulefmt into a FileError with the best line we
// can find: the offending node's line, else the label/annotation key for
// template errors, else the rule's first line.
func locate(file string, e error, idx index, lineOf func(int) int) error {
	var re *rulefmt.Error
	if !errors.As(e, &re) {
		msg := e.Error()
		if m := lineColPrefix.FindStringSubmatch(msg); m != nil {
			l, _ := strconv.Atoi(m[1])
			return &FileError{File: file, Line: lineOf(l), Msg: msg[len(m[0]):]}
		}
		if errs := yamlErrors(file, e); len(errs) == 1 {
			return errs[0]
		}
		return &FileError{File: file, Msg: msg}
	}
	inner := errors.Unwrap(errors.Unwrap(re))
	if inner == nil {
		inner = e
	}
	line := 0
	if m := lineColPrefix.FindStringSubmatch(re.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		line = lineOf(line)
	}
	var rule *yaml.Node
	if gi, ok := idx.groups[re.Group]; ok && re.Rule >= 1 && re.Rule <= len(idx.rules[gi]) {
		rule = idx.rules[gi][re.Rule-1]
	}
	if line == 0 && rule != nil {
		line = rule.Line
		// Template errors carry no node; find the label/annotation key.
		for _, sect := range []string{"annotation", "label"} {
			var key string
			if _, err := fmt.Sscanf(inner.Error(), sect+" %q", &key); err == nil {
				if k := mapKey(mapValue(rule, sect+"s"), key); k != nil {
					line = k.Line
				}
			}
		}
	}
	return &FileError{File: file, Line: line,
		Msg: fmt.Sprintf("group %q, rule %d %q: %v", re.Group, re.Rule, re.RuleName, inner)}
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlErrors converts yaml.v3 errors ("yaml: line 3: ...", or a TypeError
// listing several "line N: ..." entries) into FileErrors.
func yamlErrors(file string, err error) []error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []error
	for _, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			l, _ := strconv.Atoi(sm[1])
			out = append(out, &FileError{File: file, Line: l, Msg: sm[2]})
			continue
		}
		out = append(out, &FileError{File: file, Msg: strings.TrimPrefix(m, "yaml: ")})
	}
	return out
}

// expandAnomaly replaces the `anomaly:` key/value pair of rule r with an
// `expr:` holding the generated PromQL and adds a description annotation
// unless the rule has one.
func expandAnomaly(r, key *yaml.Node) error {
	if mapKey(r, "expr") != nil {
		return errors.New("anomaly and expr are mutually exclusive")
	}
	if mapKey(r, "record") != nil {
		return errors.New("anomaly is only allowed in alerting rules")
	}
	var a Anomaly
	val := mapValue(r, "anomaly")
	if err := val.Decode(&a); err != nil {
		return err
	}
	expr, desc, err := a.Expand()
	if err != nil {
		return err
	}
	for i := 0; i < len(r.Content); i += 2 {
		if r.Content[i] == key {
			r.Content[i] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "expr", Line: key.Line}
			r.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: expr, Style: yaml.LiteralStyle, Line: key.Line}
		}
	}
	ann := mapValue(r, "annotations")
	if ann == nil {
		ann = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: key.Line}
		r.Content = append(r.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "annotations", Line: key.Line}, ann)
	}
	if mapKey(ann, "description") == nil {
		ann.Content = append(ann.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "description", Line: key.Line},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: desc, Line: key.Line})
	}
	return nil
}

// lineMapper maps a line of the re-encoded document back to the original:
// the start of the enclosing group or rule in the original file.
func lineMapper(orig *yaml.Node, expanded []byte) func(int) int {
	var exp yaml.Node
	if yaml.Unmarshal(expanded, &exp) != nil {
		return func(int) int { return 0 }
	}
	type pair struct{ from, to int }
	var pairs []pair
	og, eg := seqItems(mapValue(docRoot(orig), "groups")), seqItems(mapValue(docRoot(&exp), "groups"))
	for i := range min(len(og), len(eg)) {
		pairs = append(pairs, pair{eg[i].Line, og[i].Line})
		or, er := seqItems(mapValue(og[i], "rules")), seqItems(mapValue(eg[i], "rules"))
		for j := range min(len(or), len(er)) {
			pairs = append(pairs, pair{er[j].Line, or[j].Line})
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].from < pairs[j].from })
	return func(l int) int {
		out := 0
		for _, p := range pairs {
			if p.from <= l {
				out = p.to
			}
		}
		return out
	}
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

// mapKey returns the key node for k in mapping m, or nil.
func mapKey(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i]
		}
	}
	return nil
}

// mapValue returns the value node for k in mapping m, or nil.
func mapValue(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}

func seqItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func scalar(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

func ruleName(r *yaml.Node) string {
	for _, k := range []string{"alert", "record"} {
		if v := mapValue(r, k); v != nil {
			return v.Value
		}
	}
	return ""
}

// loader plugs Parse into the Prometheus rule manager.
type loader struct{}

func (loader) Load(identifier string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	p, errs := LoadFile(identifier)
	if errs != nil {
		return nil, errs
	}
	return p.Groups, nil
}

func (loader) Parse(query string) (parser.Expr, error) { return parser.ParseExpr(query) }
