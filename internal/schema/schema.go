// Package schema is the registry of event kinds. Each producer (a probe, a
// deriver, later a user-defined probe) registers its kinds once: name,
// fields with types and docs, default table columns. Everything that shows
// or evaluates events reads it: JSON output, `vigil rules fields`, the CEL
// declarations of event rules, `vigil trace` tables and docs/events.md.
//
// A kind is described either by a Go struct (FromType reads its json, doc
// and maxbytes tags) or by a field list built at run time, whose events are
// Dynamic values.
package schema

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vigilproject/vigil/internal/event"
)

// Type is a field's value type.
type Type int

// Field types. Every type has a JSON form, a CEL form and a table form.
const (
	Bool     Type = iota + 1
	Int           // signed integer (int64)
	Uint          // unsigned integer (uint64); int in rules
	Double        // float64
	String        // UTF-8 text; MaxBytes bounds it when set
	Time          // time.Time; RFC 3339 in JSON, timestamp in rules
	Duration      // time.Duration; nanoseconds in JSON, duration in rules
	Object        // nested fields: rules name them evt.<object>.<field>
	Map           // string → string (headers, labels)
	List          // a list of Elem: strings, integers, doubles, booleans or objects
)

var typeNames = map[Type]string{
	Bool: "bool", Int: "int", Uint: "uint", Double: "double", String: "string",
	Time: "timestamp", Duration: "duration", Object: "object", Map: "map(string, string)", List: "list",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Field is one named value of an event.
type Field struct {
	Name string // stable snake_case JSON key
	Type Type
	Doc  string
	// MaxBytes is the declared bound of a String field (0: bounded by its
	// producer in another way, e.g. a fixed kernel buffer).
	MaxBytes int
	// Elem is a List's element; its Name is empty.
	Elem *Field
	// Fields are an Object's fields (and a List-of-Object element's).
	Fields []Field

	// goIndex is the field's index path in its Go struct (Go kinds only).
	goIndex []int
	goType  reflect.Type
}

// GoIndex is the field's reflect index path within the event struct of a
// Go-typed kind (nil for runtime-built kinds).
func (f *Field) GoIndex() []int { return f.goIndex }

// GoType is the Go type the field was read from (nil for runtime-built kinds).
func (f *Field) GoType() reflect.Type { return f.goType }

// TypeName is the type as rules and docs show it: int, string, list(string),
// map(string, string), ... Unsigned integers show as int, as in rules.
func (f *Field) TypeName() string {
	switch f.Type {
	case Uint:
		return "int"
	case List:
		if f.Elem == nil {
			return "list"
		}
		if f.Elem.Type == Object {
			return "list(object)"
		}
		return "list(" + f.Elem.TypeName() + ")"
	}
	return f.Type.String()
}

// Column is one column of a kind's default `vigil trace` table.
type Column struct {
	Header string // upper case, no spaces: TIME, PID, TX_KB
	// Field is the value shown: a header field (time, pid, ppid, uid, gid,
	// comm, exe, ...) or a dotted event field. Ignored when Format is set.
	Field string
	// Format renders the cell itself, for cells that combine fields.
	Format func(ev event.Event) string
}

// Kind is a registered event kind.
type Kind struct {
	Name event.Kind
	Doc  string
	// Producer names the probe or deriver that emits the kind.
	Producer string
	// From lists the kinds a derived kind is computed from (empty for kinds
	// a probe emits): whoever needs the kind needs their producers running.
	From []event.Kind
	// Fields are the kind's own fields, after the common header fields.
	Fields []Field
	// Columns are the default trace table; nil gets a generic table
	// (time, pid, comm and the first scalar fields).
	Columns []Column

	goType reflect.Type // the event struct; nil for runtime-built kinds
	byPath map[string]*Field
	absIdx map[string][]int // Go kinds: dotted path -> index path in the event struct
}

// GoIndex is the reflect index path of a Go-typed kind's field (dotted
// path, objects included) within its event struct; nil otherwise.
func (k *Kind) GoIndex(path string) []int { return k.absIdx[path] }

// GoType is the struct type of a Go-typed kind's events, nil when the kind
// was built at run time (its events are *Dynamic).
func (k *Kind) GoType() reflect.Type { return k.goType }

// Field returns the field at a dotted path (e.g. "request.method").
func (k *Kind) Field(path string) (*Field, bool) {
	f, ok := k.byPath[path]
	return f, ok
}

var (
	mu    sync.RWMutex
	kinds = map[event.Kind]*Kind{}
	gen   atomic.Uint64 // bumped on every change, for consumers' caches

	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Register validates k and adds it to the registry. A Go-typed kind gets
// its fields from sample (a value of or pointer to the event struct) when
// k.Fields is empty; pass a nil sample for a runtime-built kind. The
// registered kind is returned; it must not be modified afterwards.
func Register(k Kind, sample any) (*Kind, error) {
	kk := k
	kk.From = slices.Clone(k.From)
	kk.Columns = slices.Clone(k.Columns)
	if sample != nil {
		t := reflect.TypeOf(sample)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if !reflect.PointerTo(t).Implements(eventType) {
			return nil, fmt.Errorf("schema: kind %q: %v does not implement event.Event", k.Name, t)
		}
		fs, err := FromType(t)
		if err != nil {
			return nil, fmt.Errorf("schema: kind %q: %w", k.Name, err)
		}
		if len(k.Fields) > 0 {
			return nil, fmt.Errorf("schema: kind %q: give fields or a Go type, not both", k.Name)
		}
		kk.Fields, kk.goType = fs, t
	} else {
		kk.Fields = cloneFields(k.Fields)
	}
	if err := kk.validate(); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := kinds[kk.Name]; dup {
		return nil, fmt.Errorf("schema: kind %q registered twice", kk.Name)
	}
	kinds[kk.Name] = &kk
	gen.Add(1)
	return &kk, nil
}

// MustRegister is Register for built-in kinds, where an error is a
// programming mistake caught by any test that imports the package.
func MustRegister(k Kind, sample any) *Kind {
	kk, err := Register(k, sample)
	if err != nil {
		panic(err)
	}
	return kk
}

// Unregister removes a runtime-built kind (a user-defined probe being
// replaced); Go-typed kinds stay for the life of the process.
func Unregister(name event.Kind) {
	mu.Lock()
	defer mu.Unlock()
	if k := kinds[name]; k != nil && k.goType == nil {
		delete(kinds, name)
		gen.Add(1)
	}
}

// Generation changes whenever a kind is registered or removed: a consumer
// that caches what it built from the registry rebuilds when it differs.
func Generation() uint64 { return gen.Load() }

// Lookup returns a registered kind.
func Lookup(name event.Kind) (*Kind, bool) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds lists the registered kind names, sorted.
func Kinds() []event.Kind {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]event.Kind, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Names returns the names of ks, for a probe spec's Events list.
func Names(ks ...*Kind) []event.Kind {
	out := make([]event.Kind, len(ks))
	for i, k := range ks {
		out[i] = k.Name
	}
	return out
}

func (k *Kind) validate() error {
	if !nameRE.MatchString(string(k.Name)) {
		return fmt.Errorf("schema: kind name %q: use lower-case snake_case", k.Name)
	}
	k.byPath, k.absIdx = map[string]*Field{}, map[string][]int{}
	if err := validateFields(k, k.Fields, "", nil); err != nil {
		return fmt.Errorf("schema: kind %q: %w", k.Name, err)
	}
	for i, c := range k.Columns {
		if c.Header == "" || strings.ContainsAny(c.Header, " \t") {
			return fmt.Errorf("schema: kind %q: column %d: header %q must be one word", k.Name, i+1, c.Header)
		}
		if c.Format != nil {
			continue
		}
		if _, ok := headerFields[c.Field]; ok {
			continue
		}
		f, ok := k.byPath[c.Field]
		if !ok {
			return fmt.Errorf("schema: kind %q: column %s: no field %q", k.Name, c.Header, c.Field)
		}
		if f.Type == Object {
			return fmt.Errorf("schema: kind %q: column %s: field %q is an object; name one of its fields", k.Name, c.Header, c.Field)
		}
	}
	return nil
}

func validateFields(k *Kind, fs []Field, prefix string, index []int) error {
	seen := map[string]bool{}
	for i := range fs {
		f := &fs[i]
		path := prefix + f.Name
		if !nameRE.MatchString(f.Name) {
			return fmt.Errorf("field %q: use lower-case snake_case", path)
		}
		if seen[f.Name] {
			return fmt.Errorf("field %q declared twice", path)
		}
		if prefix == "" {
			if _, clash := headerFields[f.Name]; clash {
				return fmt.Errorf("field %q clashes with the common header field of that name", path)
			}
		}
		seen[f.Name] = true
		if err := validateType(f, path); err != nil {
			return err
		}
		k.byPath[path] = f
		var idx []int
		if f.goIndex != nil {
			idx = append(slices.Clone(index), f.goIndex...)
			k.absIdx[path] = idx
		}
		if f.Type == Object {
			if err := validateFields(k, f.Fields, path+".", idx); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateType(f *Field, path string) error {
	if _, ok := typeNames[f.Type]; !ok {
		return fmt.Errorf("field %q: unknown type %v", path, f.Type)
	}
	if f.MaxBytes < 0 || (f.MaxBytes > 0 && f.Type != String && !(f.Type == List && f.Elem != nil && f.Elem.Type == String)) {
		return fmt.Errorf("field %q: max bytes applies to strings only", path)
	}
	switch f.Type {
	case Object:
		if len(f.Fields) == 0 {
			return fmt.Errorf("field %q: an object needs fields", path)
		}
	case List:
		if f.Elem == nil {
			return fmt.Errorf("field %q: a list needs an element type", path)
		}
		switch f.Elem.Type {
		case Bool, Int, Uint, Double, String:
			if f.Elem.MaxBytes < 0 || (f.Elem.MaxBytes > 0 && f.Elem.Type != String) {
				return fmt.Errorf("field %q: max bytes applies to strings only", path)
			}
		case Object:
			if len(f.Elem.Fields) == 0 {
				return fmt.Errorf("field %q: a list of objects needs the objects' fields", path)
			}
			sub := &Kind{byPath: map[string]*Field{}, absIdx: map[string][]int{}}
			if err := validateFields(sub, f.Elem.Fields, path+"[].", nil); err != nil {
				return err
			}
		default:
			return fmt.Errorf("field %q: a list of %v cannot be expressed (lists hold strings, integers, doubles, booleans or objects)", path, f.Elem.Type)
		}
	default:
		if f.Elem != nil || len(f.Fields) > 0 {
			return fmt.Errorf("field %q: only lists have an element type and only objects have fields", path)
		}
	}
	return nil
}

func cloneFields(fs []Field) []Field {
	out := slices.Clone(fs)
	for i := range out {
		out[i].Fields = cloneFields(out[i].Fields)
		if out[i].Elem != nil {
			e := *out[i].Elem
			e.Fields = cloneFields(e.Fields)
			out[i].Elem = &e
		}
	}
	return out
}

// headerFields are the fields every event carries (event.Header), by JSON
// name, with their docs; they are listed once in docs and usable as columns.
var headerFields = map[string]Field{}

// Header lists the common fields in JSON order.
func Header() []Field { return slices.Clone(headerList) }

var headerList []Field

var eventType = reflect.TypeOf((*event.Event)(nil)).Elem()

func init() {
	fs, err := fromStruct(reflect.TypeOf(event.Header{}), nil, false)
	if err != nil {
		panic(err)
	}
	headerList = fs
	for _, f := range fs {
		headerFields[f.Name] = f
	}
}

// Sources expands derived kinds to the kinds they are computed from,
// recursively, keeping probe kinds as they are: the kinds whose producers
// must run for all of kinds to be seen. Unregistered kinds are kept.
func Sources(kinds ...event.Kind) []event.Kind {
	var out []event.Kind
	seen := map[event.Kind]bool{}
	var walk func(k event.Kind)
	walk = func(k event.Kind) {
		if seen[k] {
			return
		}
		seen[k] = true
		if sk, ok := Lookup(k); ok && len(sk.From) > 0 {
			for _, f := range sk.From {
				walk(f)
			}
			return
		}
		out = append(out, k)
	}
	for _, k := range kinds {
		walk(k)
	}
	return out
}
