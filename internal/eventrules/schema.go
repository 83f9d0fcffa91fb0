package eventrules

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/proc"
	evschema "github.com/vigilproject/vigil/internal/schema"
)

// field is one name visible to rules, with its CEL type and how to read it
// from an event context.
type field struct {
	idx  int // position in the schema, for the per-event value cache
	name string
	typ  *cel.Type
	get  func(c *evalCtx) ref.Val
	doc  string
	// str and strs, when set, read a string or string-list field without
	// boxing it into a CEL value (the rule index looks at every indexed
	// field of every event; boxing would allocate each time).
	str  func(c *evalCtx) string
	strs func(c *evalCtx) []string
}

// schema is the set of fields a rule on one event kind can use: the common
// process and container fields, then the kind's own fields from the event
// schema registry as evt.<name> (objects flattened to evt.<object>.<field>).
type schema struct {
	kind   event.Kind
	fields []*field
	byName map[string]*field
	src    *evschema.Kind // what it was built from
	gen    atomic.Uint64  // registry generation it was last checked against
}

var (
	schemaMu sync.RWMutex
	schemas  = map[event.Kind]*schema{}
)

// Kinds lists the event kinds rules can name: every registered kind.
func Kinds() []event.Kind { return evschema.Kinds() }

// schemaFor returns the rule schema of kind k, or nil when no producer in
// this build registered it. It is on the per-event path: a cached schema
// is used while the registry's generation is unchanged.
func schemaFor(k event.Kind) *schema {
	g := evschema.Generation()
	schemaMu.RLock()
	s := schemas[k]
	schemaMu.RUnlock()
	if s != nil && s.gen.Load() == g {
		return s
	}
	sk, ok := evschema.Lookup(k)
	if !ok {
		return nil
	}
	if s != nil && s.src == sk {
		s.gen.Store(g) // unchanged kind; another one came or went
		return s
	}
	s, err := buildSchema(sk)
	if err != nil {
		// Every schema type has a CEL form (TestEverySchemaTypeHasCELForm):
		// reaching this is a programming error, not bad input.
		panic(err)
	}
	s.gen.Store(g)
	schemaMu.Lock()
	schemas[k] = s
	schemaMu.Unlock()
	return s
}

func buildSchema(sk *evschema.Kind) (*schema, error) {
	s := &schema{kind: sk.Name, byName: map[string]*field{}, src: sk}
	add := func(f *field) {
		if _, dup := s.byName[f.name]; dup {
			return
		}
		f.idx = len(s.fields)
		s.fields = append(s.fields, f)
		s.byName[f.name] = f
	}
	for _, f := range commonFields() {
		add(f)
	}
	fs, err := kindFields(sk, sk.Fields, "")
	if err != nil {
		return nil, fmt.Errorf("event kind %q: %w", sk.Name, err)
	}
	for _, f := range fs {
		add(f)
	}
	return s, nil
}

// kindFields declares the fields of a registered kind. Go-typed kinds are
// read by reflect index (no allocation for scalars); runtime-built kinds
// through schema.Dynamic.
func kindFields(sk *evschema.Kind, fs []evschema.Field, prefix string) ([]*field, error) {
	var out []*field
	for i := range fs {
		sf := &fs[i]
		path := prefix + sf.Name
		if sf.Type == evschema.Object {
			sub, err := kindFields(sk, sf.Fields, path+".")
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		typ, err := celType(sf)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", path, err)
		}
		f := &field{name: "evt." + path, typ: typ, doc: sf.Doc}
		if sk.GoType() == nil {
			f.get = func(c *evalCtx) ref.Val {
				d, ok := c.ev.(*evschema.Dynamic)
				if !ok {
					return types.NullValue
				}
				v, _ := d.Get(path)
				return celPlain(v)
			}
			out = append(out, f)
			continue
		}
		conv := goConv(sf)
		var at func(c *evalCtx) reflect.Value
		if idx := sk.GoIndex(path); len(idx) == 1 {
			n := idx[0]
			at = func(c *evalCtx) reflect.Value { return c.rv.Field(n) }
		} else {
			at = func(c *evalCtx) reflect.Value { return c.rv.FieldByIndex(idx) }
		}
		f.get = func(c *evalCtx) ref.Val { return conv(at(c)) }
		switch t := sf.GoType(); {
		case typ.IsExactType(cel.StringType) && t.Kind() == reflect.String:
			f.str = func(c *evalCtx) string { return at(c).String() }
		case t == stringsType:
			f.strs = func(c *evalCtx) []string {
				if v := at(c); v.CanAddr() {
					return *v.Addr().Interface().(*[]string) // a pointer in an interface: no allocation
				} else {
					return v.Interface().([]string)
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// celType is the CEL type of a schema field. Unsigned integers are CEL
// ints (event values fit), objects inside lists are map(string, dyn).
func celType(f *evschema.Field) (*cel.Type, error) {
	switch f.Type {
	case evschema.Bool:
		return cel.BoolType, nil
	case evschema.Int, evschema.Uint:
		return cel.IntType, nil
	case evschema.Double:
		return cel.DoubleType, nil
	case evschema.String:
		return cel.StringType, nil
	case evschema.Time:
		return cel.TimestampType, nil
	case evschema.Duration:
		return cel.DurationType, nil
	case evschema.Map:
		return cel.MapType(cel.StringType, cel.StringType), nil
	case evschema.List:
		if f.Elem == nil {
			return nil, fmt.Errorf("list without element type")
		}
		if f.Elem.Type == evschema.Object {
			return cel.ListType(cel.MapType(cel.StringType, cel.DynType)), nil
		}
		et, err := celType(f.Elem)
		if err != nil {
			return nil, err
		}
		return cel.ListType(et), nil
	}
	return nil, fmt.Errorf("schema type %v has no CEL form", f.Type)
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
	ipType       = reflect.TypeOf(net.IP{})
	addrType     = reflect.TypeOf(netip.Addr{})
	stringerType = reflect.TypeOf((*fmt.Stringer)(nil)).Elem()
	stringsType  = reflect.TypeOf([]string(nil))
	strMapType   = reflect.TypeOf(map[string]string(nil))
)

// goConv converts a Go struct field of schema field f to its CEL value.
func goConv(f *evschema.Field) func(reflect.Value) ref.Val {
	t := f.GoType()
	switch {
	case t == timeType:
		return func(v reflect.Value) ref.Val { return types.Timestamp{Time: v.Interface().(time.Time)} }
	case t == durationType:
		return func(v reflect.Value) ref.Val { return types.Duration{Duration: time.Duration(v.Int())} }
	case t == ipType:
		return func(v reflect.Value) ref.Val {
			ip := v.Interface().(net.IP)
			if ip == nil {
				return types.String("")
			}
			return types.String(ip.String())
		}
	case t == addrType:
		return func(v reflect.Value) ref.Val {
			a := v.Interface().(netip.Addr)
			if !a.IsValid() {
				return types.String("")
			}
			return types.String(a.String())
		}
	}
	switch f.Type {
	case evschema.String:
		if t.Kind() != reflect.String && t.Implements(stringerType) {
			return func(v reflect.Value) ref.Val { return types.String(v.Interface().(fmt.Stringer).String()) }
		}
		return func(v reflect.Value) ref.Val { return types.String(v.String()) }
	case evschema.Bool:
		return func(v reflect.Value) ref.Val { return types.Bool(v.Bool()) }
	case evschema.Int:
		return func(v reflect.Value) ref.Val { return types.Int(v.Int()) }
	case evschema.Uint:
		return func(v reflect.Value) ref.Val { return types.Int(int64(v.Uint())) }
	case evschema.Double:
		return func(v reflect.Value) ref.Val { return types.Double(v.Float()) }
	case evschema.Map:
		return func(v reflect.Value) ref.Val {
			return types.NewStringStringMap(types.DefaultTypeAdapter, v.Convert(strMapType).Interface().(map[string]string))
		}
	case evschema.List:
		if f.Elem.Type == evschema.String && t.ConvertibleTo(stringsType) {
			return func(v reflect.Value) ref.Val {
				return types.NewStringList(types.DefaultTypeAdapter, v.Convert(stringsType).Interface().([]string))
			}
		}
	}
	// Lists of numbers, booleans or objects: through the plain form.
	return func(v reflect.Value) ref.Val { return celPlain(evschema.Plain(v, f)) }
}

// celPlain converts a plain schema value (see schema.Value) to CEL.
func celPlain(v any) ref.Val {
	switch x := v.(type) {
	case nil:
		return types.NullValue
	case string:
		return types.String(x)
	case bool:
		return types.Bool(x)
	case int64:
		return types.Int(x)
	case uint64:
		return types.Int(int64(x))
	case float64:
		return types.Double(x)
	case time.Time:
		return types.Timestamp{Time: x}
	case time.Duration:
		return types.Duration{Duration: x}
	case map[string]string:
		return types.NewStringStringMap(types.DefaultTypeAdapter, x)
	case []any:
		vals := make([]ref.Val, len(x))
		for i, e := range x {
			vals[i] = celPlain(e)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, vals)
	case map[string]any:
		m := make(map[ref.Val]ref.Val, len(x))
		for k, e := range x {
			m[types.String(k)] = celPlain(e)
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, m)
	}
	return types.NewErr("no CEL form for %T", v)
}

// commonFields are available on every event kind: the event's kind and time,
// its process (proc.*), the process's container (container.*), its parent
// (parent.*) and ancestry (proc.ancestors.*).
func commonFields() []*field {
	str := func(name, doc string, get func(c *evalCtx) string) *field {
		return &field{name: name, typ: cel.StringType, doc: doc, get: func(c *evalCtx) ref.Val { return types.String(get(c)) }, str: get}
	}
	num := func(name, doc string, get func(c *evalCtx) int64) *field {
		return &field{name: name, typ: cel.IntType, doc: doc, get: func(c *evalCtx) ref.Val { return types.Int(get(c)) }}
	}
	strs := func(name, doc string, get func(c *evalCtx) []string) *field {
		f := &field{name: name, typ: cel.ListType(cel.StringType), doc: doc, get: func(c *evalCtx) ref.Val {
			return types.NewStringList(types.DefaultTypeAdapter, get(c))
		}}
		if !strings.HasPrefix(name, "proc.ancestors.") { // built per call: read through the value cache
			f.strs = get
		}
		return f
	}
	return []*field{
		str("evt.kind", "event kind (exec, open, connect, ...)", func(c *evalCtx) string { return string(c.h.Kind) }),
		{name: "evt.time", typ: cel.TimestampType, doc: "event time", get: func(c *evalCtx) ref.Val { return types.Timestamp{Time: c.h.Time} }},

		num("proc.pid", "process id", func(c *evalCtx) int64 { return int64(c.h.PID) }),
		num("proc.tid", "thread id", func(c *evalCtx) int64 { return int64(c.h.TID) }),
		num("proc.ppid", "parent process id", func(c *evalCtx) int64 { return int64(c.h.PPID) }),
		num("proc.uid", "user id", func(c *evalCtx) int64 { return int64(c.h.UID) }),
		num("proc.gid", "group id", func(c *evalCtx) int64 { return int64(c.h.GID) }),
		str("proc.comm", "command name (16 bytes at most)", func(c *evalCtx) string { return c.h.Comm }),
		str("proc.exe", "executable path; for exec events the new program", func(c *evalCtx) string { return c.exe() }),
		str("proc.name", "basename of proc.exe, or comm when the executable is unknown", func(c *evalCtx) string { return basenameOr(c.exe(), c.h.Comm) }),
		strs("proc.args", "argv of the process (from its exec)", func(c *evalCtx) []string { return c.self().Args }),
		num("proc.start_time_ns", "process start time (ns since boot, filled in the kernel by every probe); proc.id is the portable key", func(c *evalCtx) int64 { return int64(c.h.StartNS) }),
		str("proc.id", "process identity \"<pid>@<start time in 10ms clock ticks>\", the same from every probe: use it as a sequence key", func(c *evalCtx) string { return c.procID() }),
		num("proc.cgroup_id", "cgroup v2 id", func(c *evalCtx) int64 { return int64(c.h.CgroupID) }),
		str("proc.cgroup", "cgroup v2 path", func(c *evalCtx) string { return c.self().Cgroup }),
		str("proc.systemd_unit", "systemd unit of the process, if any", func(c *evalCtx) string { return c.h.Unit }),

		str("container.id", "container id; empty on the host", func(c *evalCtx) string { return c.h.Container }),
		str("container.runtime", "container runtime (docker, containerd, cri-o, podman)", func(c *evalCtx) string { return c.h.Runtime }),
		str("container.pod_uid", "Kubernetes pod UID", func(c *evalCtx) string { return c.h.PodUID }),
		{name: "container.present", typ: cel.BoolType, doc: "true inside a container", get: func(c *evalCtx) ref.Val { return types.Bool(c.h.Container != "") }},

		num("parent.pid", "parent process id", func(c *evalCtx) int64 { return int64(c.parent().PID) }),
		num("parent.uid", "parent user id", func(c *evalCtx) int64 { return int64(c.parent().UID) }),
		str("parent.comm", "parent command name", func(c *evalCtx) string { return c.parent().Comm }),
		str("parent.exe", "parent executable path", func(c *evalCtx) string { return c.parent().Exe }),
		str("parent.name", "basename of parent.exe (or its comm)", func(c *evalCtx) string { p := c.parent(); return basenameOr(p.Exe, p.Comm) }),
		strs("parent.args", "parent argv", func(c *evalCtx) []string { return c.parent().Args }),
		num("parent.start_time_ns", "parent start time", func(c *evalCtx) int64 { return int64(c.parent().StartNS) }),

		strs("proc.ancestors.comm", "comm of parent, grandparent, ... (bounded depth)", func(c *evalCtx) []string {
			return mapAnc(c, func(p proc.Process) string { return p.Comm })
		}),
		strs("proc.ancestors.exe", "executable of parent, grandparent, ... (bounded depth)", func(c *evalCtx) []string {
			return mapAnc(c, func(p proc.Process) string { return p.Exe })
		}),
		strs("proc.ancestors.name", "basename of each ancestor's executable (or comm)", func(c *evalCtx) []string {
			return mapAnc(c, func(p proc.Process) string { return basenameOr(p.Exe, p.Comm) })
		}),
	}
}

func mapAnc(c *evalCtx, f func(proc.Process) string) []string {
	anc := c.ancestors()
	out := make([]string, len(anc))
	for i, p := range anc {
		out[i] = f(p)
	}
	return out
}

func basenameOr(path, alt string) string {
	if path == "" {
		return alt
	}
	if i := strings.LastIndexByte(path, '/'); i >= 0 && i < len(path)-1 {
		return path[i+1:]
	}
	return path
}

// Fields lists the names and types visible to rules on kind k, for docs and
// `vigil rules fields`.
func Fields(k event.Kind) []string {
	s := schemaFor(k)
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.fields))
	for _, f := range s.fields {
		ts := f.typ.String()
		switch {
		case f.typ.IsExactType(cel.TimestampType):
			ts = "timestamp"
		case f.typ.IsExactType(cel.DurationType):
			ts = "duration"
		}
		line := f.name + " " + ts
		if f.doc != "" {
			line += "  # " + f.doc
		}
		out = append(out, line)
	}
	return out
}
