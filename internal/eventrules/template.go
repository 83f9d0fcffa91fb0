package eventrules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// template is an output string with %{expr} placeholders; each expr is CEL
// over the same fields as the condition.
type template struct {
	parts []string      // literal text, len(parts) == len(exprs)+1
	exprs []cel.Program // values between the parts
}

const maxOutputLen = 4096

func (c *compiler) compileTemplate(it item, src string, env *cel.Env) (*template, bool) {
	n := valueNode(it.node, "output")
	t := &template{}
	rest := src
	for {
		i := strings.Index(rest, "%{")
		if i < 0 {
			t.parts = append(t.parts, rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			c.errf(it, lineOf(it.node, "output"), 0, "output: %%{ at offset %d is not closed by }", len(src)-len(rest)+i)
			return nil, false
		}
		expr := rest[i+2 : i+j]
		t.parts = append(t.parts, rest[:i])
		prg, _, ok := c.compileExpr(it, n, "output %{"+expr+"}", expr, env, nil)
		if !ok {
			return nil, false
		}
		t.exprs = append(t.exprs, prg)
		rest = rest[i+j+1:]
	}
	return t, true
}

// render evaluates the template; a failing placeholder renders as <error>.
func (t *template) render(act interpreter.Activation) string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	for i, p := range t.parts {
		b.WriteString(p)
		if i < len(t.exprs) {
			v, _, err := t.exprs[i].Eval(act)
			if err != nil {
				b.WriteString("<error>")
			} else {
				b.WriteString(formatVal(v))
			}
		}
		if b.Len() > maxOutputLen {
			s := b.String()[:maxOutputLen]
			return s + "..."
		}
	}
	return b.String()
}

// formatVal renders a CEL value for people: strings bare, lists space
// separated, timestamps RFC 3339.
func formatVal(v ref.Val) string {
	switch x := v.(type) {
	case types.String:
		return string(x)
	case types.Int:
		return strconv.FormatInt(int64(x), 10)
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10)
	case types.Double:
		return strconv.FormatFloat(float64(x), 'g', -1, 64)
	case types.Bool:
		return strconv.FormatBool(bool(x))
	case types.Timestamp:
		return x.Time.Format(time.RFC3339Nano)
	case types.Duration:
		return x.Duration.String()
	case types.Null:
		return ""
	case traits.Lister:
		var parts []string
		it := x.Iterator()
		for it.HasNext() == types.True {
			parts = append(parts, formatVal(it.Next()))
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprint(v.Value())
}
