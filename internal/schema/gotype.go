package schema

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilproject/vigil/internal/event"
)

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
	ipType       = reflect.TypeOf(net.IP{})
	addrType     = reflect.TypeOf(netip.Addr{})
	stringerType = reflect.TypeOf((*fmt.Stringer)(nil)).Elem()
	headerType   = reflect.TypeOf(event.Header{})
)

// FromType reads the fields of an event struct the way encoding/json sees
// it: exported fields with their json names, embedded structs without a
// name flattened, the embedded event.Header left out (its fields are
// common to every kind). Tags: doc:"..." documents a field, maxbytes:"N"
// declares a string's bound. A field whose type the schema cannot express
// (a channel, a map with non-string values, a list of lists, ...) is an
// error, never silently left out.
func FromType(t reflect.Type) ([]Field, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%v is not a struct", t)
	}
	return fromStruct(t, nil, true)
}

func fromStruct(t reflect.Type, index []int, skipHeader bool) ([]Field, error) {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if skipHeader && sf.Anonymous && sf.Type == headerType {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		idx := append(slices.Clone(index), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			fs, err := fromStruct(sf.Type, idx, skipHeader)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
			continue
		}
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f, err := goField(sf.Type, name)
		if err != nil {
			return nil, fmt.Errorf("field %s (%q): %w", sf.Name, name, err)
		}
		f.Doc = sf.Tag.Get("doc")
		if mb := sf.Tag.Get("maxbytes"); mb != "" {
			n, err := strconv.Atoi(mb)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("field %s: maxbytes %q is not a positive number", sf.Name, mb)
			}
			if f.Type == List && f.Elem != nil {
				f.Elem.MaxBytes = n
			} else {
				f.MaxBytes = n
			}
		}
		f.goIndex, f.goType = idx, sf.Type
		out = append(out, f)
	}
	return out, nil
}

// goField maps a Go type to a field (name and type; docs come from tags).
func goField(t reflect.Type, name string) (Field, error) {
	f := Field{Name: name}
	switch {
	case t == timeType:
		f.Type = Time
		return f, nil
	case t == durationType:
		f.Type = Duration
		return f, nil
	case t == ipType, t == addrType:
		f.Type = String
		return f, nil
	}
	switch t.Kind() {
	case reflect.String:
		f.Type = String
	case reflect.Bool:
		f.Type = Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.Type = Int
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		f.Type = Uint
	case reflect.Float32, reflect.Float64:
		f.Type = Double
	case reflect.Map:
		if t.Key().Kind() != reflect.String || t.Elem().Kind() != reflect.String {
			return f, fmt.Errorf("map %v cannot be expressed: only map[string]string", t)
		}
		f.Type = Map
	case reflect.Struct:
		if t.Implements(stringerType) {
			f.Type = String
			return f, nil
		}
		fs, err := fromStruct(t, nil, false)
		if err != nil {
			return f, err
		}
		if len(fs) == 0 {
			return f, fmt.Errorf("struct %v has no exported fields", t)
		}
		f.Type, f.Fields = Object, fs
	case reflect.Slice, reflect.Array:
		et := t.Elem()
		if et.Kind() == reflect.Uint8 {
			return f, fmt.Errorf("%v cannot be expressed: use a string with maxbytes", t)
		}
		e, err := goField(et, "")
		if err != nil {
			return f, err
		}
		switch e.Type {
		case Bool, Int, Uint, Double, String, Object:
		default:
			return f, fmt.Errorf("a list of %v (%v) cannot be expressed: lists hold strings, integers, doubles, booleans or objects", e.Type, et)
		}
		e.goType = et
		f.Type, f.Elem = List, &e
	default:
		if t.Implements(stringerType) {
			f.Type = String
			return f, nil
		}
		return f, fmt.Errorf("type %v cannot be expressed", t)
	}
	return f, nil
}
