package eventrules

import (
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"

	"github.com/vigilproject/vigil/internal/event"
)

// Filter is what a probe may filter in the kernel for one event kind without
// hiding an event any rule could match. A nil slice means "no restriction".
type Filter struct {
	// PathPrefixes: only events whose evt.path starts with one of these.
	PathPrefixes []string
	// PIDs: only events of these processes.
	PIDs []uint32
	// CgroupIDs: only events in these cgroups.
	CgroupIDs []uint64
}

// Pushdown computes, per event kind, the restrictions that every rule and
// sequence step on that kind implies. A restriction is only kept when all
// of the kind's conditions imply it (through a top-level && of simple
// tests: evt.path.startsWith("..."), evt.path == "...", evt.path in [...],
// proc.pid == N, proc.cgroup_id == N, or an || of such tests on one field).
func (rs *Ruleset) Pushdown() map[event.Kind]Filter {
	conds := map[event.Kind][]string{}
	for _, r := range rs.Rules {
		conds[r.Kind] = append(conds[r.Kind], r.condSrc)
	}
	for _, s := range rs.Sequences {
		for _, st := range s.Steps {
			conds[st.Kind] = append(conds[st.Kind], st.condSrc)
		}
		if s.Until != nil {
			conds[s.Until.Kind] = append(conds[s.Until.Kind], s.Until.condSrc)
		}
	}
	out := map[event.Kind]Filter{}
	for k, srcs := range conds {
		var f Filter
		paths, pids, cgs := true, true, true
		for _, src := range srcs {
			c := analyze(src)
			if paths = paths && c.paths != nil; paths {
				f.PathPrefixes = append(f.PathPrefixes, c.paths...)
			}
			if pids = pids && c.pids != nil; pids {
				f.PIDs = append(f.PIDs, c.pids...)
			}
			if cgs = cgs && c.cgroups != nil; cgs {
				f.CgroupIDs = append(f.CgroupIDs, c.cgroups...)
			}
		}
		if !paths {
			f.PathPrefixes = nil
		}
		if !pids {
			f.PIDs = nil
		}
		if !cgs {
			f.CgroupIDs = nil
		}
		f.PathPrefixes = minimalPrefixes(f.PathPrefixes)
		slices.Sort(f.PIDs)
		f.PIDs = slices.Compact(f.PIDs)
		slices.Sort(f.CgroupIDs)
		f.CgroupIDs = slices.Compact(f.CgroupIDs)
		if f.PathPrefixes != nil || f.PIDs != nil || f.CgroupIDs != nil {
			out[k] = f
		}
	}
	return out
}

// minimalPrefixes drops prefixes covered by shorter ones.
func minimalPrefixes(p []string) []string {
	if p == nil {
		return nil
	}
	slices.Sort(p)
	out := []string{}
	for _, s := range p {
		if len(out) > 0 && strings.HasPrefix(s, out[len(out)-1]) {
			continue
		}
		out = append(out, s)
	}
	return out
}

type constraint struct {
	paths   []string
	pids    []uint32
	cgroups []uint64
}

var parseEnv, _ = cel.NewEnv()

// analyze finds the restrictions implied by a condition ("" means true:
// no restriction).
func analyze(src string) constraint {
	if strings.TrimSpace(src) == "" {
		return constraint{}
	}
	a, iss := parseEnv.Parse(src)
	if iss.Err() != nil {
		return constraint{}
	}
	return implied(a.NativeRep().Expr())
}

// implied: a && b implies both sides' restrictions (take any side that
// restricts, intersecting is not needed for soundness: either is a superset
// of the matches); a || b implies a restriction only if both sides restrict
// the same field (union).
func implied(e ast.Expr) constraint {
	if e.Kind() != ast.CallKind {
		return constraint{}
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case "_&&_":
		l, r := implied(args[0]), implied(args[1])
		return constraint{paths: pick(l.paths, r.paths), pids: pick(l.pids, r.pids), cgroups: pick(l.cgroups, r.cgroups)}
	case "_||_":
		l, r := implied(args[0]), implied(args[1])
		var c constraint
		if l.paths != nil && r.paths != nil {
			c.paths = append(slices.Clone(l.paths), r.paths...)
		}
		if l.pids != nil && r.pids != nil {
			c.pids = append(slices.Clone(l.pids), r.pids...)
		}
		if l.cgroups != nil && r.cgroups != nil {
			c.cgroups = append(slices.Clone(l.cgroups), r.cgroups...)
		}
		return c
	case "startsWith":
		if call.IsMemberFunction() && dotted(call.Target()) == "evt.path" && len(args) == 1 {
			if s, ok := strLit(args[0]); ok {
				return constraint{paths: []string{s}}
			}
		}
	case "_==_":
		name, lit := args[0], args[1]
		if dotted(name) == "" {
			name, lit = lit, name
		}
		switch dotted(name) {
		case "evt.path":
			if s, ok := strLit(lit); ok {
				return constraint{paths: []string{s}}
			}
		case "proc.pid":
			if n, ok := intLit(lit); ok {
				return constraint{pids: []uint32{uint32(n)}}
			}
		case "proc.cgroup_id":
			if n, ok := intLit(lit); ok {
				return constraint{cgroups: []uint64{uint64(n)}}
			}
		}
	case "@in":
		if len(args) == 2 && args[1].Kind() == ast.ListKind {
			var c constraint
			elems := args[1].AsList().Elements()
			switch dotted(args[0]) {
			case "evt.path":
				for _, el := range elems {
					s, ok := strLit(el)
					if !ok {
						return constraint{}
					}
					c.paths = append(c.paths, s)
				}
				if c.paths == nil {
					c.paths = []string{}
				}
			case "proc.pid":
				for _, el := range elems {
					n, ok := intLit(el)
					if !ok {
						return constraint{}
					}
					c.pids = append(c.pids, uint32(n))
				}
			}
			return c
		}
	}
	return constraint{}
}

func pick[T any](a, b []T) []T {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case len(a) <= len(b):
		return a
	}
	return b
}

// dotted returns "a.b.c" for a select chain on an identifier, else "".
func dotted(e ast.Expr) string {
	switch e.Kind() {
	case ast.IdentKind:
		return e.AsIdent()
	case ast.SelectKind:
		s := e.AsSelect()
		if s.IsTestOnly() {
			return ""
		}
		if base := dotted(s.Operand()); base != "" {
			return base + "." + s.FieldName()
		}
	}
	return ""
}

func strLit(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

func intLit(e ast.Expr) (int64, bool) {
	if e.Kind() != ast.LiteralKind {
		return 0, false
	}
	switch v := e.AsLiteral().(type) {
	case types.Int:
		return int64(v), v >= 0
	case types.Uint:
		return int64(v), true
	}
	return 0, false
}

// Kernel filter limits of the open probe (probes.open.path_prefixes).
const (
	maxKernelPrefixes   = 8
	maxKernelPrefixSize = 128
)

// KernelFilter returns the pushdown for kind k in the shape probes accept:
// path prefixes only when there are at most 8 of at most 128 bytes, and pids.
// ok is false when nothing can be pushed down.
func (rs *Ruleset) KernelFilter(k event.Kind) (prefixes []string, pids []uint32, ok bool) {
	f, found := rs.Pushdown()[k]
	if !found {
		return nil, nil, false
	}
	if len(f.PathPrefixes) > 0 && len(f.PathPrefixes) <= maxKernelPrefixes {
		prefixes = f.PathPrefixes
		for _, p := range prefixes {
			if len(p) > maxKernelPrefixSize || p == "" {
				prefixes = nil
				break
			}
		}
	}
	pids = f.PIDs
	return prefixes, pids, prefixes != nil || pids != nil
}
