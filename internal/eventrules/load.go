package eventrules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	pack "github.com/vigilproject/vigil/deploy/rules/events"
)

// Diag is one problem found in a rule file.
type Diag struct {
	File    string
	Line    int
	Col     int
	Warning bool
	Msg     string
}

func (d Diag) String() string {
	pos := d.File
	if d.Line > 0 {
		pos = fmt.Sprintf("%s:%d", pos, d.Line)
		if d.Col > 0 {
			pos = fmt.Sprintf("%s:%d", pos, d.Col)
		}
	}
	sev := "error"
	if d.Warning {
		sev = "warning"
	}
	return pos + ": " + sev + ": " + d.Msg
}

// Diags is a list of problems; it is an error when any is not a warning.
type Diags []Diag

// Err returns the errors (not the warnings) as one error, or nil.
func (ds Diags) Err() error {
	var lines []string
	for _, d := range ds {
		if !d.Warning {
			lines = append(lines, d.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "\n"))
}

// Warnings returns only the warnings.
func (ds Diags) Warnings() Diags {
	var out Diags
	for _, d := range ds {
		if d.Warning {
			out = append(out, d)
		}
	}
	return out
}

// A rule file is a YAML list whose items each have exactly one of the keys
// list, macro, rule or sequence.

type listDoc struct {
	List  string `yaml:"list"`
	Items []any  `yaml:"items"`
	Desc  string `yaml:"desc"`
}

type macroDoc struct {
	Macro     string `yaml:"macro"`
	Condition string `yaml:"condition"`
	Desc      string `yaml:"desc"`
}

type exceptionDoc struct {
	Name      string `yaml:"name"`
	Condition string `yaml:"condition"`
}

type ruleDoc struct {
	Rule       string         `yaml:"rule"`
	Desc       string         `yaml:"desc"`
	Event      string         `yaml:"event"`
	Condition  string         `yaml:"condition"`
	Exceptions []exceptionDoc `yaml:"exceptions"`
	Severity   string         `yaml:"severity"`
	Tags       []string       `yaml:"tags"`
	Output     string         `yaml:"output"`
	Enabled    *bool          `yaml:"enabled"`
	GroupBy    []string       `yaml:"group_by"`
	Suppress   string         `yaml:"suppress"`
	Threshold  *thresholdDoc  `yaml:"threshold"`
}

// thresholdDoc turns a rule into a burst rule: it fires when count
// matches with the same key happen within window.
type thresholdDoc struct {
	Count  int      `yaml:"count"`
	Window string   `yaml:"window"`
	By     []string `yaml:"by"`
}

type stepDoc struct {
	Name      string   `yaml:"name"`
	Event     string   `yaml:"event"`
	Condition string   `yaml:"condition"`
	By        []string `yaml:"by"`
}

type sequenceDoc struct {
	Sequence string    `yaml:"sequence"`
	Desc     string    `yaml:"desc"`
	By       []string  `yaml:"by"`
	Window   string    `yaml:"window"`
	Steps    []stepDoc `yaml:"steps"`
	Until    *stepDoc  `yaml:"until"`
	Severity string    `yaml:"severity"`
	Tags     []string  `yaml:"tags"`
	Output   string    `yaml:"output"`
	Enabled  *bool     `yaml:"enabled"`
	GroupBy  []string  `yaml:"group_by"`
	Suppress string    `yaml:"suppress"`
}

// item is one parsed entry with the YAML node it came from.
type item struct {
	file string
	node *yaml.Node
	list *listDoc
	mac  *macroDoc
	rule *ruleDoc
	seq  *sequenceDoc
}

// parseFile reads the items of one rule file. Structural problems (bad YAML,
// unknown keys, wrong types) are reported with their line.
func parseFile(name string, data []byte) ([]item, Diags) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Diags{{File: name, Line: yamlErrLine(err), Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, Diags{{File: name, Line: root.Line, Msg: "a rule file is a YAML list of items, each with one of the keys list, macro, rule, sequence"}}
	}
	var items []item
	var ds Diags
	for _, n := range root.Content {
		it, err := parseItem(name, n)
		if err != nil {
			ds = append(ds, *err)
			continue
		}
		items = append(items, it)
	}
	return items, ds
}

var itemKinds = []string{"list", "macro", "rule", "sequence"}

func parseItem(file string, n *yaml.Node) (item, *Diag) {
	it := item{file: file, node: n}
	if n.Kind != yaml.MappingNode {
		return it, &Diag{File: file, Line: n.Line, Msg: "each item must be a mapping with one of the keys list, macro, rule, sequence"}
	}
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(itemKinds, n.Content[i].Value) {
			kinds = append(kinds, n.Content[i].Value)
		}
	}
	if len(kinds) != 1 {
		msg := "item has none of the keys list, macro, rule, sequence"
		if len(kinds) > 1 {
			msg = "item has more than one of the keys " + strings.Join(kinds, ", ")
		}
		return it, &Diag{File: file, Line: n.Line, Msg: msg}
	}
	var target any
	switch kinds[0] {
	case "list":
		it.list = &listDoc{}
		target = it.list
	case "macro":
		it.mac = &macroDoc{}
		target = it.mac
	case "rule":
		it.rule = &ruleDoc{}
		target = it.rule
	case "sequence":
		it.seq = &sequenceDoc{}
		target = it.seq
	}
	if d := checkKeys(file, n, reflect.TypeOf(target).Elem(), kinds[0]); d != nil {
		return it, d
	}
	if err := n.Decode(target); err != nil {
		return it, &Diag{File: file, Line: yamlErrLine(err, n.Line), Msg: cleanYAMLErr(err)}
	}
	return it, nil
}

// checkKeys reports the first key a struct does not know, recursively.
func checkKeys(file string, n *yaml.Node, t reflect.Type, what string) *Diag {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return &Diag{File: file, Line: n.Line, Col: n.Column, Msg: what + " must be a mapping"}
		}
		known := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			known[name] = t.Field(i).Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := known[k.Value]
			if !ok {
				return &Diag{File: file, Line: k.Line, Col: k.Column, Msg: fmt.Sprintf("unknown field %q in %s (known: %s)", k.Value, what, strings.Join(names, ", "))}
			}
			if d := checkKeys(file, n.Content[i+1], ft, what+"."+k.Value); d != nil {
				return d
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if d := checkKeys(file, c, t.Elem(), what); d != nil {
					return d
				}
			}
		}
	}
	return nil
}

// valueNode returns the value node of key in mapping n (nil if absent).
func valueNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// lineOf is the line of key's value in n, or n's line.
func lineOf(n *yaml.Node, key string) int {
	if v := valueNode(n, key); v != nil {
		return v.Line
	}
	if n != nil {
		return n.Line
	}
	return 0
}

// exprPos maps a position inside a CEL expression (1-based line and column)
// to the file, given the YAML scalar holding it.
func exprPos(n *yaml.Node, line, col int) (int, int) {
	if n == nil {
		return 0, 0
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		if n.Style == yaml.FoldedStyle {
			return n.Line + 1, 0 // folding changes columns and lines
		}
		return n.Line + line, 0
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line <= 1 {
			return n.Line, n.Column + col + 1
		}
		return n.Line, 0
	}
	if line <= 1 {
		return n.Line, n.Column + col
	}
	return n.Line, 0
}

func yamlErrLine(err error, def ...int) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if i := strings.Index(msg, "line "); i >= 0 {
		var l int
		if _, e := fmt.Sscanf(msg[i:], "line %d", &l); e == nil {
			return l
		}
	}
	if len(def) > 0 {
		return def[0]
	}
	return 0
}

func cleanYAMLErr(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		m := te.Errors[0]
		if i := strings.Index(m, ": "); i >= 0 && strings.HasPrefix(m, "line ") {
			m = m[i+2:]
		}
		return m
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// readFiles parses every file; files are read whole (rule files are small),
// but a file over maxFileSize is refused. Items of the embedded pack that a
// user file defines again (same rule, sequence, macro or list name) are
// dropped: a user file overrides the pack item by item.
func readFiles(paths []string) ([]item, Diags) {
	var items []item
	var ds Diags
	for _, p := range paths {
		data, err := readRuleFile(p)
		if err != nil {
			ds = append(ds, Diag{File: p, Msg: err.Error()})
			continue
		}
		it, d := parseFile(p, data)
		items = append(items, it...)
		ds = append(ds, d...)
	}
	return overrideBuiltin(items), ds
}

// BuiltinPrefix marks a file of the embedded default pack, e.g.
// "builtin:process.yaml".
const BuiltinPrefix = "builtin:"

// BuiltinFiles names the files of the embedded default pack.
func BuiltinFiles() []string {
	var out []string
	for _, n := range pack.Names() {
		out = append(out, BuiltinPrefix+n)
	}
	return out
}

func readRuleFile(p string) ([]byte, error) {
	if name, ok := strings.CutPrefix(p, BuiltinPrefix); ok {
		return fs.ReadFile(pack.FS, name)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("file is %d bytes; rule files are limited to %d", st.Size(), maxFileSize)
	}
	return os.ReadFile(p)
}

func (it item) key() string {
	switch {
	case it.list != nil:
		return "list " + it.list.List
	case it.mac != nil:
		return "macro " + it.mac.Macro
	case it.rule != nil:
		return "rule " + it.rule.Rule
	case it.seq != nil:
		return "sequence " + it.seq.Sequence
	}
	return ""
}

func overrideBuiltin(items []item) []item {
	user := map[string]bool{}
	for _, it := range items {
		if !strings.HasPrefix(it.file, BuiltinPrefix) {
			user[it.key()] = true
		}
	}
	if len(user) == 0 {
		return items
	}
	return slices.DeleteFunc(items, func(it item) bool {
		return strings.HasPrefix(it.file, BuiltinPrefix) && user[it.key()]
	})
}

const maxFileSize = 4 << 20
