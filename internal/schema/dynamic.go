package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilproject/vigil/internal/event"
)

// Dynamic is an event of a kind built at run time (a user-defined probe):
// its fields are set by name and checked against the kind's schema. It
// implements event.Event, marshals to JSON in field order and is usable in
// event rules like any Go-typed event.
type Dynamic struct {
	event.Header
	kind *Kind
	vals []any // by top-level field; nil: not set (zero value)
}

// NewDynamic returns an empty event of a runtime-built kind.
func NewDynamic(k *Kind) (*Dynamic, error) {
	if k.goType != nil {
		return nil, fmt.Errorf("schema: kind %q has Go type %v: build that instead of a dynamic event", k.Name, k.goType)
	}
	return &Dynamic{Header: event.Header{Kind: k.Name}, kind: k, vals: make([]any, len(k.Fields))}, nil
}

// Schema is the event's kind.
func (d *Dynamic) Schema() *Kind { return d.kind }

// EventKind is the schema's kind, whatever Header.Kind was set to.
func (d *Dynamic) EventKind() event.Kind { return d.kind.Name }

// Set stores a top-level field after checking it against the schema.
// Accepted values: bool; any Go integer (Int, Uint); float32/64; string
// (at most MaxBytes bytes: cut longer ones with Truncate); time.Time;
// time.Duration; map[string]string; for lists a slice of the element's Go
// type ([]string, []int64, []uint64, []float64, []bool) or []any; for
// objects (and list elements that are objects) map[string]any.
func (d *Dynamic) Set(name string, v any) error {
	i := slices.IndexFunc(d.kind.Fields, func(f Field) bool { return f.Name == name })
	if i < 0 {
		return fmt.Errorf("%s: no field %q", d.kind.Name, name)
	}
	nv, err := normalize(&d.kind.Fields[i], v, name)
	if err != nil {
		return fmt.Errorf("%s: %w", d.kind.Name, err)
	}
	d.vals[i] = nv
	return nil
}

// Get returns the value at a dotted path (e.g. "request.method") in its
// normalised form (int64, uint64, float64, string, bool, time.Time,
// time.Duration, map[string]string, []any, map[string]any), or the type's
// zero value when it was not set. ok is false for an unknown path.
func (d *Dynamic) Get(path string) (v any, ok bool) {
	top, rest, nested := strings.Cut(path, ".")
	i := slices.IndexFunc(d.kind.Fields, func(f Field) bool { return f.Name == top })
	if i < 0 {
		return nil, false
	}
	f := &d.kind.Fields[i]
	v = d.vals[i]
	for nested {
		if f.Type != Object {
			return nil, false
		}
		var name string
		name, rest, nested = strings.Cut(rest, ".")
		j := slices.IndexFunc(f.Fields, func(g Field) bool { return g.Name == name })
		if j < 0 {
			return nil, false
		}
		f = &f.Fields[j]
		m, _ := v.(map[string]any)
		v = m[name]
	}
	if v == nil {
		v = zero(f)
	}
	return v, true
}

// MarshalJSON writes the common header and then every field in schema
// order; unset fields appear with their zero value, so consumers see one
// shape per kind.
func (d *Dynamic) MarshalJSON() ([]byte, error) {
	hdr := d.Header
	hdr.Kind = d.kind.Name
	h, err := json.Marshal(&hdr)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(h[:len(h)-1])
	for i := range d.kind.Fields {
		f := &d.kind.Fields[i]
		b.WriteByte(',')
		writeKey(&b, f.Name)
		v := d.vals[i]
		if v == nil {
			v = zero(f)
		}
		if err := writeValue(&b, f, v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeKey(b *bytes.Buffer, k string) {
	kb, _ := json.Marshal(k)
	b.Write(kb)
	b.WriteByte(':')
}

func writeValue(b *bytes.Buffer, f *Field, v any) error {
	switch f.Type {
	case Object:
		m, _ := v.(map[string]any)
		b.WriteByte('{')
		for i := range f.Fields {
			g := &f.Fields[i]
			if i > 0 {
				b.WriteByte(',')
			}
			writeKey(b, g.Name)
			gv := m[g.Name]
			if gv == nil {
				gv = zero(g)
			}
			if err := writeValue(b, g, gv); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case List:
		l, _ := v.([]any)
		b.WriteByte('[')
		for i, e := range l {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, f.Elem, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case Duration:
		v = int64(v.(time.Duration))
	}
	vb, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(vb)
	return nil
}

func zero(f *Field) any {
	switch f.Type {
	case Bool:
		return false
	case Int:
		return int64(0)
	case Uint:
		return uint64(0)
	case Double:
		return float64(0)
	case String:
		return ""
	case Time:
		return time.Time{}
	case Duration:
		return time.Duration(0)
	case Map:
		return map[string]string{}
	case List:
		return []any{}
	case Object:
		return map[string]any{}
	}
	return nil
}

// normalize checks v against f and returns it in the stored form.
func normalize(f *Field, v any, path string) (any, error) {
	bad := func() (any, error) {
		return nil, fmt.Errorf("field %q is %s, not %T", path, f.TypeName(), v)
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return nil, fmt.Errorf("field %q: nil value", path)
	}
	switch f.Type {
	case Bool:
		if rv.Kind() != reflect.Bool {
			return bad()
		}
		return rv.Bool(), nil
	case Int, Uint:
		var i int64
		var u uint64
		var neg bool
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if _, isDur := v.(time.Duration); isDur {
				return bad()
			}
			i, u, neg = rv.Int(), uint64(rv.Int()), rv.Int() < 0
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			u, i = rv.Uint(), int64(rv.Uint())
			if f.Type == Int && rv.Uint() > math.MaxInt64 {
				return nil, fmt.Errorf("field %q: %d overflows int", path, rv.Uint())
			}
		default:
			return bad()
		}
		if f.Type == Uint {
			if neg {
				return nil, fmt.Errorf("field %q is unsigned, got %d", path, i)
			}
			return u, nil
		}
		return i, nil
	case Double:
		if rv.Kind() != reflect.Float32 && rv.Kind() != reflect.Float64 {
			return bad()
		}
		return rv.Float(), nil
	case String:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if f.MaxBytes > 0 && len(s) > f.MaxBytes {
			return nil, fmt.Errorf("field %q: %d bytes exceed its declared maximum of %d (cut it with schema.Truncate)", path, len(s), f.MaxBytes)
		}
		return s, nil
	case Time:
		t, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		return t, nil
	case Duration:
		d, ok := v.(time.Duration)
		if !ok {
			return bad()
		}
		return d, nil
	case Map:
		m, ok := v.(map[string]string)
		if !ok {
			return bad()
		}
		return maps2(m), nil
	case Object:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			j := slices.IndexFunc(f.Fields, func(g Field) bool { return g.Name == k })
			if j < 0 {
				return nil, fmt.Errorf("field %q has no field %q", path, k)
			}
			nx, err := normalize(&f.Fields[j], x, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = nx
		}
		return out, nil
	case List:
		if rv.Kind() != reflect.Slice {
			return bad()
		}
		out := make([]any, rv.Len())
		for i := range out {
			x, err := normalize(f.Elem, rv.Index(i).Interface(), fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	return bad()
}

func maps2(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Truncate cuts s to at most max bytes without splitting a UTF-8 sequence,
// and reports whether it cut.
func Truncate(s string, max int) (string, bool) {
	if max <= 0 || len(s) <= max {
		return s, false
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}
