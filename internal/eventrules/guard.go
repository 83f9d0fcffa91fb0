package eventrules

import (
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/traits"
)

// A guard is a necessary condition of a rule that Go can test without the
// CEL interpreter: a top-level conjunct such as proc.name == "x",
// proc.name in [...], evt.filename.startsWith("/tmp/") (or an || of such
// tests, on one field or several), or a boolean field. Rules whose guards
// fail are not evaluated; with many rules most fail on a string compare.
type guard struct {
	f        *field
	contains string // list field: must contain this string
	eq       map[string]struct{}
	prefixes []string
	suffixes []string
	isBool   bool
	// any: an || of tests on different fields; the guard passes when one
	// of them does (f is nil then).
	any []*guard
}

func (g *guard) pass(c *evalCtx) bool {
	if g.any != nil {
		for _, a := range g.any {
			if a.pass(c) {
				return true
			}
		}
		return false
	}
	switch {
	case g.f.str != nil && !g.isBool && g.contains == "":
		return g.passString(g.f.str(c))
	case g.f.strs != nil && g.contains != "":
		return slices.Contains(g.f.strs(c), g.contains)
	}
	v := c.value(g.f)
	if g.isBool {
		return v == types.True
	}
	if g.contains != "" {
		l, ok := v.(traits.Lister)
		if !ok {
			return true
		}
		if ss, ok := l.Value().([]string); ok {
			return slices.Contains(ss, g.contains)
		}
		return l.Contains(types.String(g.contains)) == types.True
	}
	s, ok := v.(types.String)
	if !ok {
		return true // unexpected type: let CEL decide
	}
	return g.passString(string(s))
}

func (g *guard) passString(s string) bool {
	if _, hit := g.eq[s]; hit {
		return true
	}
	for _, p := range g.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	for _, p := range g.suffixes {
		if strings.HasSuffix(s, p) {
			return true
		}
	}
	return false
}

// value returns a field's value through the per-event cache.
func (c *evalCtx) value(f *field) any {
	if f.idx < len(c.vals) {
		if c.valGen[f.idx] == c.gen {
			return c.vals[f.idx]
		}
		v := f.get(c)
		c.vals[f.idx], c.valGen[f.idx] = v, c.gen
		return v
	}
	return f.get(c)
}

// guardsFor derives guards from an (expanded) condition for schema s.
func guardsFor(src string, s *schema) []*guard {
	a, iss := parseEnv.Parse(src)
	if iss.Err() != nil {
		return nil
	}
	var out []*guard
	var walk func(e ast.Expr)
	walk = func(e ast.Expr) {
		if e.Kind() == ast.CallKind && e.AsCall().FunctionName() == "_&&_" {
			for _, x := range e.AsCall().Args() {
				walk(x)
			}
			return
		}
		if g := guardOf(e, s); g != nil {
			out = append(out, g)
		}
	}
	walk(a.NativeRep().Expr())
	return out
}

// alternatives lists the single-field tests of g.
func alternatives(g *guard) []*guard {
	if g.any != nil {
		return g.any
	}
	return []*guard{g}
}

// guardOf turns one test (or an || of tests on one field) into a guard.
func guardOf(e ast.Expr, s *schema) *guard {
	if name := dotted(e); name != "" {
		if f := s.byName[name]; f != nil && f.typ.IsExactType(cel.BoolType) {
			return &guard{f: f, isBool: true}
		}
		return nil
	}
	if e.Kind() != ast.CallKind {
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	strField := func(x ast.Expr) *field {
		if f := s.byName[dotted(x)]; f != nil && f.typ.IsExactType(cel.StringType) {
			return f
		}
		return nil
	}
	switch call.FunctionName() {
	case "_&&_":
		// Inside an ||: a conjunction is only true when each conjunct is,
		// so either conjunct's guard is necessary (the left one first:
		// authors put the cheap test first).
		if g := guardOf(args[0], s); g != nil {
			return g
		}
		return guardOf(args[1], s)
	case "_||_":
		l, r := guardOf(args[0], s), guardOf(args[1], s)
		if l == nil || r == nil {
			return nil
		}
		if l.f != r.f || l.any != nil || r.any != nil || l.isBool || r.isBool || l.contains != "" || r.contains != "" {
			return &guard{any: append(alternatives(l), alternatives(r)...)}
		}
		for k := range r.eq {
			if l.eq == nil {
				l.eq = map[string]struct{}{}
			}
			l.eq[k] = struct{}{}
		}
		l.prefixes = append(l.prefixes, r.prefixes...)
		l.suffixes = append(l.suffixes, r.suffixes...)
		return l
	case "_==_":
		f, lit := strField(args[0]), args[1]
		if f == nil {
			f, lit = strField(args[1]), args[0]
		}
		if v, ok := strLit(lit); f != nil && ok {
			return &guard{f: f, eq: map[string]struct{}{v: {}}}
		}
	case "@in":
		if lit, ok := strLit(args[0]); ok && lit != "" {
			if f := s.byName[dotted(args[1])]; f != nil && f.typ.IsExactType(cel.ListType(cel.StringType)) {
				return &guard{f: f, contains: lit}
			}
			return nil
		}
		f := strField(args[0])
		if f == nil || args[1].Kind() != ast.ListKind {
			return nil
		}
		g := &guard{f: f, eq: map[string]struct{}{}}
		for _, el := range args[1].AsList().Elements() {
			v, ok := strLit(el)
			if !ok {
				return nil
			}
			g.eq[v] = struct{}{}
		}
		return g
	case "startsWith", "endsWith":
		if !call.IsMemberFunction() || len(args) != 1 {
			return nil
		}
		f := strField(call.Target())
		v, ok := strLit(args[0])
		if f == nil || !ok {
			return nil
		}
		if call.FunctionName() == "startsWith" {
			return &guard{f: f, prefixes: []string{v}}
		}
		return &guard{f: f, suffixes: []string{v}}
	}
	return nil
}
