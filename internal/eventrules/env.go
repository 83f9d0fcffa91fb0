package eventrules

import (
	"net/netip"
	"path"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
)

// Functions added to CEL for rules on network and file events.
var customFuncs = []cel.EnvOption{
	cel.Function("is_loopback",
		cel.Overload("is_loopback_string", []*cel.Type{cel.StringType}, cel.BoolType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				a, err := netip.ParseAddr(string(v.(types.String)))
				if err != nil {
					return types.False
				}
				return types.Bool(a.Unmap().IsLoopback())
			}))),
	cel.Function("is_private",
		cel.Overload("is_private_string", []*cel.Type{cel.StringType}, cel.BoolType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				a, err := netip.ParseAddr(string(v.(types.String)))
				if err != nil {
					return types.False
				}
				a = a.Unmap()
				return types.Bool(a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast())
			}))),
	cel.Function("in_cidr",
		cel.Overload("in_cidr_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(a, p ref.Val) ref.Val {
				addr, err := netip.ParseAddr(string(a.(types.String)))
				if err != nil {
					return types.False
				}
				pfx, err := netip.ParsePrefix(string(p.(types.String)))
				if err != nil {
					return types.NewErr("in_cidr: %v", err)
				}
				return types.Bool(pfx.Contains(addr.Unmap()))
			}))),
	cel.Function("basename",
		cel.Overload("basename_string", []*cel.Type{cel.StringType}, cel.StringType,
			cel.UnaryBinding(func(v ref.Val) ref.Val { return types.String(path.Base(string(v.(types.String)))) }))),
	cel.Function("dirname",
		cel.Overload("dirname_string", []*cel.Type{cel.StringType}, cel.StringType,
			cel.UnaryBinding(func(v ref.Val) ref.Val { return types.String(path.Dir(string(v.(types.String)))) }))),
	ext.Strings(),
}

var (
	envMu    sync.Mutex
	kindEnvs = map[*schema]*cel.Env{}
)

// baseEnv is the CEL environment of one event kind: its fields unprefixed.
func baseEnv(s *schema) (*cel.Env, error) {
	envMu.Lock()
	defer envMu.Unlock()
	if e := kindEnvs[s]; e != nil {
		return e, nil
	}
	opts := append([]cel.EnvOption{}, customFuncs...)
	for _, f := range s.fields {
		opts = append(opts, cel.Variable(f.name, f.typ))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	kindEnvs[s] = e
	return e, nil
}

// withSteps extends env with the fields of earlier sequence steps, as
// "<step>.<field>".
func withSteps(env *cel.Env, steps []*Step) (*cel.Env, error) {
	if len(steps) == 0 {
		return env, nil
	}
	var opts []cel.EnvOption
	for _, st := range steps {
		for _, f := range schemaFor(st.Kind).fields {
			opts = append(opts, cel.Variable(st.Name+"."+f.name, f.typ))
		}
	}
	return env.Extend(opts...)
}

// identifiers returns the top-level identifiers of a CEL expression (not
// member names after '.', not function names, not inside string literals),
// in order of first appearance with their byte offsets.
func identifiers(src string) []identRef {
	var out []identRef
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"' || c == '\'':
			i = skipString(src, i)
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case isIdentStart(c):
			// raw/bytes string prefixes: r"..", b'..', rb"..", br".."
			j := i
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			word := src[i:j]
			if j < len(src) && (src[j] == '"' || src[j] == '\'') && len(word) <= 2 && strings.Trim(strings.ToLower(word), "rb") == "" {
				i = skipString(src, j)
				continue
			}
			k := j
			for k < len(src) && (src[k] == ' ' || src[k] == '\t' || src[k] == '\n' || src[k] == '\r') {
				k++
			}
			isCall := k < len(src) && src[k] == '('
			p := i - 1
			for p >= 0 && (src[p] == ' ' || src[p] == '\t' || src[p] == '\n' || src[p] == '\r') {
				p--
			}
			isMember := p >= 0 && src[p] == '.'
			if !isCall && !isMember {
				out = append(out, identRef{name: word, off: i})
			}
			i = j
		case c >= '0' && c <= '9':
			for i < len(src) && (isIdentPart(src[i]) || src[i] == '.') {
				i++
			}
		default:
			i++
		}
	}
	return out
}

type identRef struct {
	name string
	off  int
}

func skipString(src string, i int) int {
	q := src[i]
	if strings.HasPrefix(src[i:], string([]byte{q, q, q})) {
		end := strings.Index(src[i+3:], string([]byte{q, q, q}))
		if end < 0 {
			return len(src)
		}
		return i + 3 + end + 3
	}
	i++
	for i < len(src) {
		switch src[i] {
		case '\\':
			i += 2
			continue
		case q:
			return i + 1
		case '\n':
			return i
		}
		i++
	}
	return len(src)
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') }

// replaceIdents substitutes the identifiers in refs (sorted by offset) with
// their replacement text.
func replaceIdents(src string, refs []identRef, repl func(string) (string, bool)) string {
	var b strings.Builder
	last := 0
	for _, r := range refs {
		s, ok := repl(r.name)
		if !ok {
			continue
		}
		b.WriteString(src[last:r.off])
		b.WriteString(s)
		last = r.off + len(r.name)
	}
	b.WriteString(src[last:])
	return b.String()
}
