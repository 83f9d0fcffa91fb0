package schema

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilproject/vigil/internal/event"
)

// TimeLayout is how table cells show event times.
const TimeLayout = "15:04:05.000"

// genericColumns is how many event fields a kind without declared columns
// shows after TIME, PID and COMM.
const genericColumns = 6

// Columns returns the table header of a kind: its declared columns, or for
// a kind that declares none TIME, PID, COMM and its first scalar fields.
// ok is false for an unregistered kind.
func Columns(kind event.Kind) (headers []string, ok bool) {
	k, ok := Lookup(kind)
	if !ok {
		return nil, false
	}
	for _, c := range k.columns() {
		headers = append(headers, c.Header)
	}
	return headers, true
}

func (k *Kind) columns() []Column {
	if k.Columns != nil {
		return k.Columns
	}
	cols := []Column{{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "COMM", Field: "comm"}}
	for _, f := range k.Fields {
		if len(cols) == 3+genericColumns {
			break
		}
		switch f.Type {
		case Object, List, Map:
			continue
		}
		cols = append(cols, Column{Header: strings.ToUpper(f.Name), Field: f.Name})
	}
	return cols
}

// Row renders ev as cells under its kind's Columns. An event of an
// unregistered kind gives nil.
func Row(ev event.Event) []string {
	k, ok := Lookup(ev.EventKind())
	if !ok {
		return nil
	}
	cols := k.columns()
	out := make([]string, len(cols))
	for i, c := range cols {
		if c.Format != nil {
			out[i] = c.Format(ev)
			continue
		}
		v, _ := Value(ev, c.Field)
		out[i] = Cell(v)
	}
	return out
}

// Value returns a field of ev by dotted path (a common header field such as
// "pid" or "time", or an event field such as "request.method") in plain
// form: bool, int64, uint64, float64, string, time.Time, time.Duration,
// map[string]string, []any or map[string]any.
func Value(ev event.Event, path string) (any, bool) {
	if hf, ok := headerFields[path]; ok {
		return plain(reflect.ValueOf(ev.EventHeader()).Elem().FieldByIndex(hf.goIndex), &hf), true
	}
	if d, ok := ev.(*Dynamic); ok {
		return d.Get(path)
	}
	k, ok := Lookup(ev.EventKind())
	if !ok || k.goType == nil {
		return nil, false
	}
	f, ok := k.byPath[path]
	if !ok {
		return nil, false
	}
	rv := reflect.ValueOf(ev)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	if rv.Type() != k.goType {
		return nil, false
	}
	return plain(rv.FieldByIndex(k.absIdx[path]), f), true
}

// Plain converts a Go struct field's value to its plain form (see Value);
// f must come from FromType for that field.
func Plain(v reflect.Value, f *Field) any { return plain(v, f) }

func plain(v reflect.Value, f *Field) any {
	switch f.Type {
	case Bool:
		return v.Bool()
	case Int:
		return v.Int()
	case Uint:
		return v.Uint()
	case Double:
		return v.Float()
	case String:
		switch x := v.Interface().(type) {
		case string:
			return x
		case fmt.Stringer:
			if v.Kind() == reflect.Slice && v.IsNil() {
				return ""
			}
			if a, ok := x.(interface{ IsValid() bool }); ok && !a.IsValid() {
				return ""
			}
			return x.String()
		}
		return v.String()
	case Time:
		return v.Interface().(time.Time)
	case Duration:
		return time.Duration(v.Int())
	case Map:
		out := make(map[string]string, v.Len())
		it := v.MapRange()
		for it.Next() {
			out[it.Key().String()] = it.Value().String()
		}
		return out
	case List:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i), f.Elem)
		}
		return out
	case Object:
		out := make(map[string]any, len(f.Fields))
		for i := range f.Fields {
			g := &f.Fields[i]
			out[g.Name] = plain(v.FieldByIndex(g.goIndex), g)
		}
		return out
	}
	return nil
}

// Cell renders a plain value for a table: times as TimeLayout, doubles
// with 3 decimals, lists space-separated (quoted when needed), maps as
// sorted k=v pairs.
func Cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', 3, 64)
	case time.Time:
		return x.Format(TimeLayout)
	case time.Duration:
		return x.String()
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + x[k]
		}
		return QuoteArgs(parts)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = Cell(e)
		}
		return QuoteArgs(parts)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + Cell(x[k])
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprint(v)
}

// QuoteArgs joins words for display, quoting the empty ones and those with
// spaces or quotes (argv in exec tables).
func QuoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
