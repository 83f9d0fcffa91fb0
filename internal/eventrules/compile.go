package eventrules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/vigilproject/vigil/internal/event"
)

// Options bound the engine and set defaults for rules that do not say.
type Options struct {
	// AncestryDepth bounds proc.ancestors.* (parent, grandparent, ...).
	AncestryDepth int
	// Suppress is the default dedup window per rule and group.
	Suppress time.Duration
	// MaxKeysPerRule and MaxKeysTotal bound sequence state.
	MaxKeysPerRule int
	MaxKeysTotal   int
	// ReorderWindow is how long events for sequences wait so that events
	// from other CPUs and probes can be put in time order.
	ReorderWindow time.Duration
	// ResolveAfter is how long an event alert stays firing in receivers.
	ResolveAfter time.Duration
	// Host is the host label of alerts.
	Host string
	// NoSuppression sends an alert for every match (tests and replays).
	NoSuppression bool
}

// DefaultOptions are the built-in bounds.
func DefaultOptions() Options {
	return Options{AncestryDepth: 8, Suppress: time.Minute, MaxKeysPerRule: 10000, MaxKeysTotal: 100000,
		ReorderWindow: 150 * time.Millisecond, ResolveAfter: 5 * time.Minute}
}

var severities = []string{"critical", "error", "warning", "notice", "info"}

// Rule is a compiled single-event rule.
type Rule struct {
	Name     string
	Desc     string
	Kind     event.Kind
	Severity string
	Tags     []string
	File     string
	Line     int

	cond       cel.Program
	condSrc    string // after macro expansion
	exceptions []namedProgram
	output     *template
	groupBy    []cel.Program
	suppress   time.Duration
	hash       string
	threshold  *threshold
	guards     []*guard
}

// threshold makes a rule fire on the count-th match of one key within
// window instead of on every match.
type threshold struct {
	count  int
	window time.Duration
	by     []cel.Program
}

const maxThresholdCount = 1000

type namedProgram struct {
	name string
	prg  cel.Program
}

// Step is one step of a sequence, or its until clause.
type Step struct {
	Name    string
	Kind    event.Kind
	cond    cel.Program // nil: every event of Kind matches
	condSrc string
	by      []cel.Program
	guards  []*guard
}

// Sequence is a compiled sequence rule.
type Sequence struct {
	Name     string
	Desc     string
	Severity string
	Tags     []string
	File     string
	Line     int
	Window   time.Duration
	Steps    []*Step
	Until    *Step

	// exitBy computes the key of the process that exits, from an exit
	// event, when the key is made of process fields only; then the state
	// of that key ends with the process.
	exitBy   []cel.Program
	output   *template
	groupBy  []cel.Program
	suppress time.Duration
	hash     string
}

// Ruleset is the compiled content of a set of rule files.
type Ruleset struct {
	Rules     []*Rule
	Sequences []*Sequence
	Files     []string
	Opts      Options

	byKind   map[event.Kind][]*Rule
	seqKinds map[event.Kind]bool
	lists    int
	macros   int
}

// Kinds lists the event kinds the ruleset needs.
func (rs *Ruleset) Kinds() []event.Kind {
	set := map[event.Kind]bool{}
	for k := range rs.byKind {
		set[k] = true
	}
	for k := range rs.seqKinds {
		set[k] = true
	}
	out := make([]event.Kind, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Summary is a one-line description for logs and `vigil rules check`.
func (rs *Ruleset) Summary() string {
	return fmt.Sprintf("%d rules, %d sequences, %d macros, %d lists; event kinds: %v", len(rs.Rules), len(rs.Sequences), rs.macros, rs.lists, rs.Kinds())
}

// LoadFiles reads and compiles rule files. The ruleset is nil when any
// diagnostic is an error; warnings come back either way.
func LoadFiles(paths []string, opts Options) (*Ruleset, Diags) {
	items, ds := readFiles(paths)
	rs, cds := compileItems(items, opts)
	ds = append(ds, cds...)
	if ds.Err() != nil {
		return nil, ds
	}
	rs.Files = paths
	return rs, ds
}

// Compile compiles one rule file given as bytes (name is used in messages).
func Compile(name string, data []byte, opts Options) (*Ruleset, Diags) {
	items, ds := parseFile(name, data)
	if ds.Err() != nil {
		return nil, ds
	}
	rs, cds := compileItems(items, opts)
	ds = append(ds, cds...)
	if ds.Err() != nil {
		return nil, ds
	}
	return rs, ds
}

type listDef struct {
	it      item
	typ     *cel.Type
	literal string
	used    bool
}

type macroDef struct {
	it        item
	used      bool
	expanding bool
	expanded  string
	done      bool
	bad       error
}

type compiler struct {
	opts   Options
	lists  map[string]*listDef
	macros map[string]*macroDef
	ds     Diags
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reservedID = []string{"evt", "proc", "parent", "container", "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
)

func (c *compiler) errf(it item, line, col int, format string, a ...any) {
	c.ds = append(c.ds, Diag{File: it.file, Line: line, Col: col, Msg: fmt.Sprintf(format, a...)})
}

func (c *compiler) warnf(it item, line int, format string, a ...any) {
	c.ds = append(c.ds, Diag{File: it.file, Line: line, Warning: true, Msg: fmt.Sprintf(format, a...)})
}

func compileItems(items []item, opts Options) (*Ruleset, Diags) {
	def := DefaultOptions()
	if opts.Suppress == 0 {
		opts.Suppress = def.Suppress
	}
	if opts.MaxKeysPerRule <= 0 {
		opts.MaxKeysPerRule = def.MaxKeysPerRule
	}
	if opts.MaxKeysTotal <= 0 {
		opts.MaxKeysTotal = def.MaxKeysTotal
	}
	if opts.ResolveAfter <= 0 {
		opts.ResolveAfter = def.ResolveAfter
	}
	if opts.AncestryDepth < 0 {
		opts.AncestryDepth = 0
	}
	c := &compiler{opts: opts, lists: map[string]*listDef{}, macros: map[string]*macroDef{}}
	rs := &Ruleset{Opts: opts, byKind: map[event.Kind][]*Rule{}, seqKinds: map[event.Kind]bool{}}
	// Lists and macros first: rules may use those defined later or in
	// other files.
	for _, it := range items {
		switch {
		case it.list != nil:
			c.addList(it)
		case it.mac != nil:
			c.addMacro(it)
		}
	}
	names := map[string]item{}
	for _, it := range items {
		var name string
		switch {
		case it.rule != nil:
			name = it.rule.Rule
		case it.seq != nil:
			name = it.seq.Sequence
		default:
			continue
		}
		if prev, dup := names[name]; dup && name != "" {
			c.errf(it, it.node.Line, 0, "rule %q is already defined at %s:%d", name, prev.file, prev.node.Line)
			continue
		}
		names[name] = it
		if it.rule != nil {
			if r := c.compileRule(it); r != nil && r.enabled(it) {
				rs.Rules = append(rs.Rules, r)
				rs.byKind[r.Kind] = append(rs.byKind[r.Kind], r)
			}
		} else if s := c.compileSequence(it); s != nil && enabled(it.seq.Enabled) {
			rs.Sequences = append(rs.Sequences, s)
			for _, st := range s.Steps {
				rs.seqKinds[st.Kind] = true
			}
			if s.Until != nil {
				rs.seqKinds[s.Until.Kind] = true
			}
			if s.exitBy != nil {
				rs.seqKinds[event.KindExit] = true
			}
		}
	}
	for name, l := range c.lists {
		if !l.used {
			c.warnf(l.it, l.it.node.Line, "list %q is never used", name)
		}
	}
	for name, m := range c.macros {
		if !m.used {
			c.warnf(m.it, m.it.node.Line, "macro %q is never used", name)
		}
	}
	slices.SortFunc(c.ds, func(a, b Diag) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		return a.Line - b.Line
	})
	rs.lists, rs.macros = len(c.lists), len(c.macros)
	return rs, c.ds
}

func (r *Rule) enabled(it item) bool { return enabled(it.rule.Enabled) }

func enabled(b *bool) bool { return b == nil || *b }

func (c *compiler) checkName(it item, what, name string) bool {
	switch {
	case name == "":
		c.errf(it, it.node.Line, 0, "%s has no name", what)
	case !nameRE.MatchString(name):
		c.errf(it, lineOf(it.node, what), 0, "%s name %q: use letters, digits and _ only, not starting with a digit", what, name)
	case slices.Contains(reservedID, name):
		c.errf(it, lineOf(it.node, what), 0, "%s name %q is reserved", what, name)
	default:
		return true
	}
	return false
}

func (c *compiler) addList(it item) {
	l := it.list
	if !c.checkName(it, "list", l.List) {
		return
	}
	if prev := c.lists[l.List]; prev != nil {
		c.errf(it, it.node.Line, 0, "list %q is already defined at %s:%d", l.List, prev.it.file, prev.it.node.Line)
		return
	}
	if c.macros[l.List] != nil {
		c.errf(it, it.node.Line, 0, "list %q has the name of a macro", l.List)
		return
	}
	var parts []string
	typ := cel.ListType(cel.StringType)
	allInt, allStr := true, true
	for _, v := range l.Items {
		switch v.(type) {
		case string:
			allInt = false
		case int, int64, uint64:
			allStr = false
		default:
			allInt, allStr = false, false
		}
	}
	switch {
	case len(l.Items) == 0 || allStr:
	case allInt:
		typ = cel.ListType(cel.IntType)
	default:
		c.errf(it, lineOf(it.node, "items"), 0, "list %q: items must be all strings or all integers", l.List)
		return
	}
	for _, v := range l.Items {
		switch x := v.(type) {
		case string:
			parts = append(parts, celQuote(x))
		default:
			parts = append(parts, fmt.Sprint(x))
		}
	}
	c.lists[l.List] = &listDef{it: it, typ: typ, literal: "[" + strings.Join(parts, ", ") + "]"}
}

// celQuote writes s as a CEL string literal.
func celQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == 0xfffd:
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (c *compiler) addMacro(it item) {
	m := it.mac
	if !c.checkName(it, "macro", m.Macro) {
		return
	}
	if prev := c.macros[m.Macro]; prev != nil {
		c.errf(it, it.node.Line, 0, "macro %q is already defined at %s:%d", m.Macro, prev.it.file, prev.it.node.Line)
		return
	}
	if c.lists[m.Macro] != nil {
		c.errf(it, it.node.Line, 0, "macro %q has the name of a list", m.Macro)
		return
	}
	if strings.TrimSpace(m.Condition) == "" {
		c.errf(it, it.node.Line, 0, "macro %q has no condition", m.Macro)
		return
	}
	c.macros[m.Macro] = &macroDef{it: it}
}

// expand replaces macro and list names in src by their definitions
// (macros recursively, in parentheses). It marks what it uses.
func (c *compiler) expand(src string) (string, error) {
	refs := identifiers(src)
	var err error
	fail := func(e error) (string, bool) {
		if err == nil {
			err = e
		}
		return "", false
	}
	out := replaceIdents(src, refs, func(name string) (string, bool) {
		if err != nil {
			return "", false
		}
		if l := c.lists[name]; l != nil {
			l.used = true
			return l.literal, true
		}
		m := c.macros[name]
		if m == nil {
			return "", false
		}
		m.used = true
		if m.bad != nil {
			return fail(m.bad)
		}
		if !m.done {
			if m.expanding {
				m.bad = fmt.Errorf("macro %q refers to itself", name)
				return fail(m.bad)
			}
			m.expanding = true
			e, xerr := c.expand(m.it.mac.Condition)
			m.expanding = false
			if xerr == nil && len(e) > maxExpanded {
				xerr = fmt.Errorf("macro %q expands to more than %d bytes", name, maxExpanded)
			}
			if xerr != nil {
				m.bad = xerr
				return fail(xerr)
			}
			m.expanded, m.done = e, true
		}
		return "(" + m.expanded + ")", true
	})
	if err == nil && len(out) > maxExpanded {
		err = fmt.Errorf("expression expands to more than %d bytes (macros nest too deep)", maxExpanded)
	}
	return out, err
}

// maxExpanded bounds an expression after macro expansion.
const maxExpanded = 64 << 10

// compileExpr compiles a CEL expression from the YAML node n of item it.
// Errors are reported at their position in the file: the user's text is
// checked with macros and lists declared as typed variables, then the
// expanded text is compiled into the program.
func (c *compiler) compileExpr(it item, n *yaml.Node, what, src string, env *cel.Env, want *cel.Type) (cel.Program, string, bool) {
	line := it.node.Line
	if n != nil {
		line = n.Line
	}
	if strings.TrimSpace(src) == "" {
		c.errf(it, line, 0, "%s is empty", what)
		return nil, "", false
	}
	var decls []cel.EnvOption
	seen := map[string]bool{}
	for _, r := range identifiers(src) {
		if seen[r.name] {
			continue
		}
		seen[r.name] = true
		if l := c.lists[r.name]; l != nil {
			l.used = true
			decls = append(decls, cel.Variable(r.name, l.typ))
			continue
		}
		m := c.macros[r.name]
		if m == nil {
			continue
		}
		m.used = true
		exp, err := c.expand(r.name)
		if err != nil {
			c.errf(it, line, 0, "%s: %v", what, err)
			return nil, "", false
		}
		mast, iss := env.Compile(exp)
		if iss.Err() != nil {
			c.errf(m.it, lineOf(m.it.node, "condition"), 0, "macro %q (used by %s at line %d): %s", r.name, what, line, issueText(iss))
			return nil, "", false
		}
		decls = append(decls, cel.Variable(r.name, mast.OutputType()))
	}
	checkEnv := env
	if len(decls) > 0 {
		var err error
		if checkEnv, err = env.Extend(decls...); err != nil {
			c.errf(it, line, 0, "%s: %v", what, err)
			return nil, "", false
		}
	}
	ast, iss := checkEnv.Compile(src)
	if iss.Err() != nil {
		e := iss.Errors()[0]
		l, col := exprPos(n, e.Location.Line(), e.Location.Column())
		if l == 0 {
			l = line
		}
		c.errf(it, l, col, "%s: %s", what, oneIssue(explain(e.Message, src, e.Location.Line(), e.Location.Column(), checkEnv, c), len(iss.Errors())))
		return nil, "", false
	}
	if want != nil && !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
		c.errf(it, line, 0, "%s must be %s, not %s", what, want, ast.OutputType())
		return nil, "", false
	}
	expanded, err := c.expand(src)
	if err != nil {
		c.errf(it, line, 0, "%s: %v", what, err)
		return nil, "", false
	}
	ast, iss = env.Compile(expanded)
	if iss.Err() != nil {
		c.errf(it, line, 0, "%s (after macro expansion): %s", what, issueText(iss))
		return nil, "", false
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		c.errf(it, line, 0, "%s: %v", what, err)
		return nil, "", false
	}
	return prg, expanded, true
}

func issueText(iss *cel.Issues) string {
	errs := iss.Errors()
	if len(errs) == 0 {
		return iss.String()
	}
	return oneIssue(fmt.Sprintf("%d:%d: %s", errs[0].Location.Line(), errs[0].Location.Column()+1, errs[0].Message), len(errs))
}

func oneIssue(msg string, n int) string {
	if n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	return msg
}

func (c *compiler) kindOf(it item, n *yaml.Node, what, name string) (*schema, bool) {
	line := it.node.Line
	if n != nil {
		line = n.Line
	}
	if name == "" {
		c.errf(it, line, 0, "%s: event is missing (one of %v)", what, Kinds())
		return nil, false
	}
	s := schemaFor(event.Kind(name))
	if s == nil {
		c.errf(it, line, 0, "%s: unknown event %q (known: %v)", what, name, Kinds())
		return nil, false
	}
	return s, true
}

func (c *compiler) commonMeta(it item, severity, suppress string) (string, time.Duration, bool) {
	ok := true
	if severity == "" {
		severity = "warning"
	}
	if !slices.Contains(severities, severity) {
		c.errf(it, lineOf(it.node, "severity"), 0, "severity %q is not one of %v", severity, severities)
		ok = false
	}
	d := c.opts.Suppress
	if suppress != "" {
		var err error
		d, err = time.ParseDuration(suppress)
		if err != nil || d < 0 {
			c.errf(it, lineOf(it.node, "suppress"), 0, "suppress: %q is not a duration such as 30s or 5m", suppress)
			ok = false
		}
	}
	return severity, d, ok
}

func (c *compiler) compileRule(it item) *Rule {
	d := it.rule
	if !c.checkName(it, "rule", d.Rule) {
		return nil
	}
	sch, ok := c.kindOf(it, valueNode(it.node, "event"), "rule "+strconv.Quote(d.Rule), d.Event)
	if !ok {
		return nil
	}
	sev, sup, ok := c.commonMeta(it, d.Severity, d.Suppress)
	if !ok {
		return nil
	}
	env, err := baseEnv(sch)
	if err != nil {
		c.errf(it, it.node.Line, 0, "%v", err)
		return nil
	}
	r := &Rule{Name: d.Rule, Desc: d.Desc, Kind: sch.kind, Severity: sev, Tags: d.Tags, File: it.file, Line: it.node.Line, suppress: sup}
	var good bool
	r.cond, r.condSrc, good = c.compileExpr(it, valueNode(it.node, "condition"), "condition", d.Condition, env, cel.BoolType)
	ok = ok && good
	excNodes := valueNode(it.node, "exceptions")
	for i, ex := range d.Exceptions {
		var n *yaml.Node
		if excNodes != nil && i < len(excNodes.Content) {
			n = valueNode(excNodes.Content[i], "condition")
		}
		name := ex.Name
		if name == "" {
			name = strconv.Itoa(i + 1)
		}
		prg, _, good := c.compileExpr(it, n, "exception "+strconv.Quote(name), ex.Condition, env, cel.BoolType)
		ok = ok && good
		r.exceptions = append(r.exceptions, namedProgram{name: name, prg: prg})
	}
	r.output, good = c.compileTemplate(it, d.Output, env)
	ok = ok && good
	r.groupBy, good = c.compileList(it, "group_by", d.GroupBy, env)
	ok = ok && good
	if d.Threshold != nil {
		r.threshold, good = c.compileThreshold(it, d.Threshold, env)
		ok = ok && good
	}
	if !ok {
		return nil
	}
	r.hash = hashNode(it.node)
	r.guards = guardsFor(r.condSrc, sch)
	return r
}

func (c *compiler) compileThreshold(it item, d *thresholdDoc, env *cel.Env) (*threshold, bool) {
	n := valueNode(it.node, "threshold")
	th := &threshold{count: d.Count}
	if d.Count < 2 || d.Count > maxThresholdCount {
		c.errf(it, lineOf(n, "count"), 0, "threshold.count: %d must be between 2 and %d", d.Count, maxThresholdCount)
		return nil, false
	}
	w, err := time.ParseDuration(d.Window)
	if err != nil || w <= 0 {
		c.errf(it, lineOf(n, "window"), 0, "threshold.window: %q is not a positive duration such as 5s", d.Window)
		return nil, false
	}
	th.window = w
	if len(d.By) == 0 {
		c.errf(it, lineOf(n, "by"), 0, "threshold.by: give the key matches are counted by, e.g. [proc.pid, proc.start_time_ns]")
		return nil, false
	}
	var ok bool
	th.by, ok = c.compileListAt(it, valueNode(n, "by"), "threshold.by", d.By, env)
	return th, ok
}

func (c *compiler) compileList(it item, key string, srcs []string, env *cel.Env) ([]cel.Program, bool) {
	nodes := valueNode(it.node, key)
	return c.compileListAt(it, nodes, key, srcs, env)
}

func (c *compiler) compileListAt(it item, nodes *yaml.Node, key string, srcs []string, env *cel.Env) ([]cel.Program, bool) {
	var out []cel.Program
	ok := true
	for i, s := range srcs {
		var n *yaml.Node
		if nodes != nil && i < len(nodes.Content) {
			n = nodes.Content[i]
		}
		prg, _, good := c.compileExpr(it, n, fmt.Sprintf("%s[%d]", key, i), s, env, nil)
		ok = ok && good
		out = append(out, prg)
	}
	return out, ok
}

func (c *compiler) compileSequence(it item) *Sequence {
	d := it.seq
	if !c.checkName(it, "sequence", d.Sequence) {
		return nil
	}
	sev, sup, ok := c.commonMeta(it, d.Severity, d.Suppress)
	s := &Sequence{Name: d.Sequence, Desc: d.Desc, Severity: sev, Tags: d.Tags, File: it.file, Line: it.node.Line, suppress: sup}
	if d.Window == "" {
		c.errf(it, it.node.Line, 0, "sequence %q: window is missing (e.g. 10s)", d.Sequence)
		ok = false
	} else if w, err := time.ParseDuration(d.Window); err != nil || w <= 0 {
		c.errf(it, lineOf(it.node, "window"), 0, "window: %q is not a positive duration such as 10s", d.Window)
		ok = false
	} else {
		s.Window = w
	}
	if len(d.Steps) < 2 {
		c.errf(it, lineOf(it.node, "steps"), 0, "sequence %q needs at least 2 steps", d.Sequence)
		return nil
	}
	if len(d.Steps) > 16 {
		c.errf(it, lineOf(it.node, "steps"), 0, "sequence %q has %d steps; at most 16", d.Sequence, len(d.Steps))
		return nil
	}
	stepNodes := valueNode(it.node, "steps")
	nKeys := -1
	compileStep := func(sd stepDoc, n *yaml.Node, prev []*Step, what string) *Step {
		if !c.checkNameAt(it, n, what, sd.Name) {
			return nil
		}
		for _, p := range prev {
			if p.Name == sd.Name {
				c.errf(it, n.Line, 0, "%s: step name %q is used twice", what, sd.Name)
				return nil
			}
		}
		if c.macros[sd.Name] != nil || c.lists[sd.Name] != nil {
			c.errf(it, n.Line, 0, "%s: step name %q is also a macro or list name", what, sd.Name)
			return nil
		}
		sch, good := c.kindOf(it, valueNode(n, "event"), what, sd.Event)
		if !good {
			return nil
		}
		base, err := baseEnv(sch)
		if err != nil {
			c.errf(it, n.Line, 0, "%v", err)
			return nil
		}
		env, err := withSteps(base, prev)
		if err != nil {
			c.errf(it, n.Line, 0, "%v", err)
			return nil
		}
		st := &Step{Name: sd.Name, Kind: sch.kind}
		if strings.TrimSpace(sd.Condition) != "" {
			if st.cond, st.condSrc, good = c.compileExpr(it, valueNode(n, "condition"), what+" condition", sd.Condition, env, cel.BoolType); !good {
				return nil
			}
			st.guards = guardsFor(st.condSrc, sch)
		}
		by := sd.By
		byNode := valueNode(n, "by")
		if by == nil {
			by, byNode = d.By, valueNode(it.node, "by")
		}
		if len(by) == 0 {
			c.errf(it, n.Line, 0, "%s: no key: give `by` on the sequence or the step (e.g. [proc.pid, proc.start_time_ns])", what)
			return nil
		}
		if nKeys >= 0 && len(by) != nKeys {
			c.errf(it, n.Line, 0, "%s: `by` has %d keys but the first step has %d", what, len(by), nKeys)
			return nil
		}
		nKeys = len(by)
		// Keys are computed from the step's own event only.
		if st.by, good = c.compileListAt(it, byNode, what+" by", by, base); !good {
			return nil
		}
		return st
	}
	for i, sd := range d.Steps {
		var n *yaml.Node
		if stepNodes != nil && i < len(stepNodes.Content) {
			n = stepNodes.Content[i]
		}
		if sd.Name == "" {
			sd.Name = "step" + strconv.Itoa(i+1)
		}
		st := compileStep(sd, n, s.Steps, fmt.Sprintf("step %q", sd.Name))
		if st == nil {
			ok = false
			continue
		}
		s.Steps = append(s.Steps, st)
	}
	if !ok {
		return nil
	}
	if d.Until != nil {
		ud := *d.Until
		if ud.Name == "" {
			ud.Name = "until"
		}
		if s.Until = compileStep(ud, valueNode(it.node, "until"), s.Steps, "until"); s.Until == nil {
			return nil
		}
	}
	// State keyed by process fields ends when that process exits.
	if exitSch := schemaFor(event.KindExit); exitSch != nil {
		if env, err := baseEnv(exitSch); err == nil {
			by := d.Steps[0].By
			if by == nil {
				by = d.By
			}
			var prgs []cel.Program
			for _, b := range by {
				if !processOnly(b) {
					prgs = nil
					break
				}
				ast, iss := env.Compile(b)
				if iss.Err() != nil {
					prgs = nil
					break
				}
				prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
				if err != nil {
					prgs = nil
					break
				}
				prgs = append(prgs, prg)
			}
			s.exitBy = prgs
		}
	}
	outEnv, err := s.outputEnv()
	if err != nil {
		c.errf(it, it.node.Line, 0, "%v", err)
		return nil
	}
	var good bool
	if s.output, good = c.compileTemplate(it, d.Output, outEnv); !good {
		return nil
	}
	if s.groupBy, good = c.compileList(it, "group_by", d.GroupBy, outEnv); !good {
		return nil
	}
	s.hash = hashNode(it.node)
	return s
}

// processOnly reports whether a key expression names only the process
// itself (proc.pid, proc.start_time_ns, ...): such keys end at exit.
func processOnly(src string) bool {
	src = strings.TrimSpace(src)
	return strings.HasPrefix(src, "proc.") && nameRE.MatchString(strings.ReplaceAll(strings.TrimPrefix(src, "proc."), ".", "_")) &&
		!strings.HasPrefix(src, "proc.ancestors")
}

// outputEnv: the output and group_by of a sequence see every step's fields
// prefixed with the step name, and the last step's fields unprefixed.
func (s *Sequence) outputEnv() (*cel.Env, error) {
	last := s.Steps[len(s.Steps)-1]
	base, err := baseEnv(schemaFor(last.Kind))
	if err != nil {
		return nil, err
	}
	return withSteps(base, s.Steps)
}

func (c *compiler) checkNameAt(it item, n *yaml.Node, what, name string) bool {
	line := it.node.Line
	if n != nil {
		line = n.Line
	}
	if !nameRE.MatchString(name) || slices.Contains(reservedID, name) {
		c.errf(it, line, 0, "%s: step name %q: use letters, digits and _ only (not a reserved word)", what, name)
		return false
	}
	return true
}

func hashNode(n *yaml.Node) string {
	b, _ := yaml.Marshal(n)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// explain turns CEL's "undeclared reference to 'proc'" for proc.nam into a
// message naming the whole dotted name and the fields that do exist.
func explain(msg, src string, line, col int, env *cel.Env, c *compiler) string {
	if !strings.HasPrefix(msg, "undeclared reference to ") {
		return msg
	}
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) || col < 0 || col > len(lines[line-1]) {
		return msg
	}
	rest := lines[line-1][col:]
	end := 0
	for end < len(rest) && (isIdentPart(rest[end]) || rest[end] == '.') {
		end++
	}
	name := strings.TrimRight(rest[:end], ".")
	if name == "" {
		return msg
	}
	root, _, _ := strings.Cut(name, ".")
	var near []string
	for _, v := range env.Variables() {
		n := v.Name()
		if strings.HasPrefix(n, root+".") && !strings.Contains(strings.TrimPrefix(n, root+"."), ".") == !strings.Contains(strings.TrimPrefix(name, root+"."), ".") {
			near = append(near, n)
		}
	}
	slices.Sort(near)
	if len(near) == 0 {
		if !strings.Contains(name, ".") {
			return fmt.Sprintf("unknown name %q (not a field, macro or list; fields start with evt., proc., parent., container.)", name)
		}
		return fmt.Sprintf("unknown field %q (no fields start with %q here)", name, root+".")
	}
	if len(near) > 40 {
		near = append(near[:40], "...")
	}
	return fmt.Sprintf("unknown field %q (known: %s)", name, strings.Join(near, ", "))
}
