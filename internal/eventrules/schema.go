package eventrules

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/proc"
)

// field is one name visible to rules, with its CEL type and how to read it
// from an event context.
type field struct {
	idx  int // position in the schema, for the per-event value cache
	name string
	typ  *cel.Type
	get  func(c *evalCtx) ref.Val
	doc  string
}

// schema is the set of fields a rule on one event kind can use.
type schema struct {
	kind   event.Kind
	fields []*field
	byName map[string]*field
	// provisional schemas describe event kinds whose Go type is not part of
	// this build: rules on them compile but never match.
	provisional bool
}

var (
	schemaMu  sync.RWMutex
	kindTypes = map[event.Kind]reflect.Type{
		event.KindExec:    reflect.TypeOf(event.Exec{}),
		event.KindExit:    reflect.TypeOf(event.Exit{}),
		event.KindFork:    reflect.TypeOf(event.Fork{}),
		event.KindOpen:    reflect.TypeOf(event.Open{}),
		event.KindConnect: reflect.TypeOf(event.TCPConnect{}),
		event.KindAccept:  reflect.TypeOf(event.TCPAccept{}),
		event.KindClose:   reflect.TypeOf(event.TCPClose{}),
	}
	schemas = map[event.Kind]*schema{}
)

// RegisterKind makes an event type visible to rules: every exported field of
// the struct with a JSON name (except the embedded Header) becomes evt.<name>.
// sample is a pointer to (or value of) the event struct.
func RegisterKind(k event.Kind, sample any) {
	t := reflect.TypeOf(sample)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	schemaMu.Lock()
	kindTypes[k] = t
	delete(schemas, k)
	schemaMu.Unlock()
}

// provisionalKinds lists event kinds that rules may name before their probe
// exists in this build, with the fields the probe is specified to provide.
var provisionalKinds = map[event.Kind][]provisionalField{
	event.KindOpen: {
		{"path", cel.StringType}, {"flags", cel.IntType}, {"ret", cel.IntType}, {"error", cel.StringType},
	},
	event.KindConnect: {
		{"family", cel.StringType}, {"saddr", cel.StringType}, {"sport", cel.IntType},
		{"daddr", cel.StringType}, {"dport", cel.IntType}, {"error", cel.StringType}, {"latency_ms", cel.DoubleType},
	},
	event.KindAccept: {
		{"family", cel.StringType}, {"saddr", cel.StringType}, {"sport", cel.IntType},
		{"daddr", cel.StringType}, {"dport", cel.IntType},
	},
	event.KindClose: {
		{"family", cel.StringType}, {"saddr", cel.StringType}, {"sport", cel.IntType},
		{"daddr", cel.StringType}, {"dport", cel.IntType},
	},
}

type provisionalField struct {
	name string
	typ  *cel.Type
}

// Kinds lists the event kinds rules can name.
func Kinds() []event.Kind {
	schemaMu.RLock()
	defer schemaMu.RUnlock()
	var out []event.Kind
	for k := range kindTypes {
		out = append(out, k)
	}
	for k := range provisionalKinds {
		if _, ok := kindTypes[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// schemaFor returns the schema of kind k, or nil when no rule can name it.
func schemaFor(k event.Kind) *schema {
	schemaMu.RLock()
	s := schemas[k]
	t, known := kindTypes[k]
	schemaMu.RUnlock()
	if s != nil {
		return s
	}
	var pf []provisionalField
	if !known {
		var ok bool
		if pf, ok = provisionalKinds[k]; !ok {
			return nil
		}
	}
	s = &schema{kind: k, byName: map[string]*field{}}
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
	if known {
		for _, f := range structFields(t) {
			add(f)
		}
	} else {
		s.provisional = true
		for _, p := range pf {
			add(&field{name: "evt." + p.name, typ: p.typ, get: func(*evalCtx) ref.Val { return types.NullValue }})
		}
	}
	schemaMu.Lock()
	schemas[k] = s
	schemaMu.Unlock()
	return s
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
	ipType       = reflect.TypeOf(net.IP{})
	addrType     = reflect.TypeOf(netip.Addr{})
	stringerType = reflect.TypeOf((*fmt.Stringer)(nil)).Elem()
	headerType   = reflect.TypeOf(event.Header{})
)

// structFields builds evt.<json name> fields for the event struct t.
// Embedded structs without a JSON name (other than Header) are flattened,
// as encoding/json does.
func structFields(t reflect.Type) []*field {
	return structFieldsAt(t, nil)
}

func structFieldsAt(t reflect.Type, index []int) []*field {
	var out []*field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type == headerType {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		idx := append(slices.Clone(index), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			out = append(out, structFieldsAt(sf.Type, idx)...)
			continue
		}
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		typ, conv := celConv(sf.Type)
		if typ == nil {
			continue
		}
		if len(idx) == 1 {
			n := idx[0]
			out = append(out, &field{name: "evt." + name, typ: typ, get: func(c *evalCtx) ref.Val {
				return conv(c.rv.Field(n))
			}})
			continue
		}
		out = append(out, &field{name: "evt." + name, typ: typ, get: func(c *evalCtx) ref.Val {
			return conv(c.rv.FieldByIndex(idx))
		}})
	}
	return out
}

// celConv maps a Go field type to its CEL type and a converter.
func celConv(t reflect.Type) (*cel.Type, func(reflect.Value) ref.Val) {
	switch {
	case t == timeType:
		return cel.TimestampType, func(v reflect.Value) ref.Val { return types.Timestamp{Time: v.Interface().(time.Time)} }
	case t == durationType:
		return cel.DurationType, func(v reflect.Value) ref.Val { return types.Duration{Duration: time.Duration(v.Int())} }
	case t == ipType:
		return cel.StringType, func(v reflect.Value) ref.Val {
			ip := v.Interface().(net.IP)
			if ip == nil {
				return types.String("")
			}
			return types.String(ip.String())
		}
	case t == addrType:
		return cel.StringType, func(v reflect.Value) ref.Val {
			a := v.Interface().(netip.Addr)
			if !a.IsValid() {
				return types.String("")
			}
			return types.String(a.String())
		}
	}
	switch t.Kind() {
	case reflect.String:
		return cel.StringType, func(v reflect.Value) ref.Val { return types.String(v.String()) }
	case reflect.Bool:
		return cel.BoolType, func(v reflect.Value) ref.Val { return types.Bool(v.Bool()) }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return cel.IntType, func(v reflect.Value) ref.Val { return types.Int(v.Int()) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return cel.IntType, func(v reflect.Value) ref.Val { return types.Int(int64(v.Uint())) }
	case reflect.Float32, reflect.Float64:
		return cel.DoubleType, func(v reflect.Value) ref.Val { return types.Double(v.Float()) }
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return cel.ListType(cel.StringType), func(v reflect.Value) ref.Val {
				return types.NewStringList(types.DefaultTypeAdapter, v.Interface().([]string))
			}
		}
	}
	if t.Implements(stringerType) {
		return cel.StringType, func(v reflect.Value) ref.Val { return types.String(v.Interface().(fmt.Stringer).String()) }
	}
	return nil, nil
}

// commonFields are available on every event kind: the event's kind and time,
// its process (proc.*), the process's container (container.*), its parent
// (parent.*) and ancestry (proc.ancestors.*).
func commonFields() []*field {
	str := func(name, doc string, get func(c *evalCtx) string) *field {
		return &field{name: name, typ: cel.StringType, doc: doc, get: func(c *evalCtx) ref.Val { return types.String(get(c)) }}
	}
	num := func(name, doc string, get func(c *evalCtx) int64) *field {
		return &field{name: name, typ: cel.IntType, doc: doc, get: func(c *evalCtx) ref.Val { return types.Int(get(c)) }}
	}
	strs := func(name, doc string, get func(c *evalCtx) []string) *field {
		return &field{name: name, typ: cel.ListType(cel.StringType), doc: doc, get: func(c *evalCtx) ref.Val {
			return types.NewStringList(types.DefaultTypeAdapter, get(c))
		}}
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
		num("proc.start_time_ns", "process start time (boot-based ns); precision differs between probes, key sequences by proc.id", func(c *evalCtx) int64 { return int64(c.h.StartNS) }),
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
