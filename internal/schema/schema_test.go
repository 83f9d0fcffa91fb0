package schema_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
	_ "github.com/vigilproject/vigil/internal/event/derive"
	_ "github.com/vigilproject/vigil/internal/probe/open"
	_ "github.com/vigilproject/vigil/internal/probe/process"
	_ "github.com/vigilproject/vigil/internal/probe/tcp"
	"github.com/vigilproject/vigil/internal/schema"
)

var tm = time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)

func hdr(k event.Kind) event.Header {
	return event.Header{Kind: k, Time: tm, Process: event.Process{PID: 4242, PPID: 1, UID: 1000, Comm: "curl"}}
}

// The registered columns reproduce the tables `vigil trace exec|exit|open|tcp`
// printed before the registry existed, header and cells.
func TestTraceColumnsReproduceTables(t *testing.T) {
	headers := map[event.Kind][]string{
		"exec":    {"TIME", "PID", "PPID", "UID", "COMM", "RET", "ARGS"},
		"exit":    {"TIME", "PID", "PPID", "COMM", "CODE", "SIGNAL", "AGE_S"},
		"open":    {"TIME", "PID", "COMM", "FD", "ERR", "FLAGS", "PATH"},
		"close":   {"TIME", "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "RTT_MS", "RETRANS", "DURATION_MS", "RESULT"},
		"connect": {"TIME", "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "RTT_MS", "RETRANS", "DURATION_MS", "RESULT"},
		"accept":  {"TIME", "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "RTT_MS", "RETRANS", "DURATION_MS", "RESULT"},
	}
	for k, want := range headers {
		got, ok := schema.Columns(k)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("Columns(%s) = %q, %v; want %q", k, got, ok, want)
		}
	}
	v6 := event.TCPConn{SAddr: "::1", SPort: 1, DAddr: "::1", DPort: 9}
	cases := []struct {
		ev   event.Event
		want []string
	}{
		{&event.Exec{Header: hdr("exec"), Filename: "/usr/bin/curl", Args: []string{"curl", "-H", "a b", ""}},
			[]string{"03:04:05.678", "4242", "1", "1000", "curl", "0", `curl -H "a b" ""`}},
		{&event.Exec{Header: hdr("exec"), Filename: "/nope", Args: []string{"/nope"}, ArgsTruncated: true, Ret: -2, Error: "ENOENT"},
			[]string{"03:04:05.678", "4242", "1", "1000", "curl", "ENOENT", "/nope ..."}},
		{&event.Exit{Header: hdr("exit"), ExitCode: 3, LifetimeSeconds: 1.23456},
			[]string{"03:04:05.678", "4242", "1", "curl", "3", "0", "1.235"}},
		{&event.Exit{Header: hdr("exit"), Signal: 9, LifetimeSeconds: 0.0004},
			[]string{"03:04:05.678", "4242", "1", "curl", "0", "9", "0.000"}},
		{&event.Open{Header: hdr("open"), Path: "/etc/shadow", PathResolved: true, FlagNames: "O_RDONLY", FD: 3, Ret: 3},
			[]string{"03:04:05.678", "4242", "curl", "3", "0", "O_RDONLY", "/etc/shadow"}},
		{&event.Open{Header: hdr("open"), Path: "x/y", PathTruncated: true, FlagNames: "O_WRONLY|O_CREAT", Mode: 0o644, FD: -1, Ret: -13, Error: "EACCES"},
			[]string{"03:04:05.678", "4242", "curl", "-1", "EACCES", "O_WRONLY|O_CREAT 0644", "x/y... (relative, unresolved)"}},
		{&event.TCPClose{Header: hdr("close"), TCPConn: event.TCPConn{SAddr: "10.0.0.1", SPort: 5555, DAddr: "1.1.1.1", DPort: 443},
			BytesSent: 10240, BytesReceived: 2047, SRTTUS: 1234, Retransmits: 2, DurationMS: 12.5},
			[]string{"03:04:05.678", "4242", "curl", "10.0.0.1", "5555", "1.1.1.1", "443", "10", "1", "1.234", "2", "12.500", "close"}},
		{&event.TCPConnect{Header: hdr("connect"), TCPConn: v6, LatencyMS: 0.25, Error: "ECONNREFUSED"},
			[]string{"03:04:05.678", "4242", "curl", "::1", "1", "::1", "9", "-", "-", "-", "-", "0.250", "ECONNREFUSED"}},
		{&event.TCPConnect{Header: hdr("connect"), TCPConn: v6, LatencyMS: 0.25},
			[]string{"03:04:05.678", "4242", "curl", "::1", "1", "::1", "9", "-", "-", "-", "-", "0.250", "connect"}},
		{&event.TCPAccept{Header: hdr("accept"), TCPConn: event.TCPConn{SAddr: "::1", SPort: 80, DAddr: "::1", DPort: 50000}, QueuedMS: 1.5},
			[]string{"03:04:05.678", "4242", "curl", "::1", "80", "::1", "50000", "-", "-", "-", "-", "1.500", "accept"}},
	}
	for _, c := range cases {
		if got := schema.Row(c.ev); !slices.Equal(got, c.want) {
			t.Errorf("Row(%s)\n got %q\nwant %q", c.ev.EventKind(), got, c.want)
		}
	}
}

// l7Sample has every shape an L7 event needs: nested objects, string maps,
// lists of integers, strings and objects, and a byte-limited string.
type l7Sample struct {
	event.Header
	Request struct {
		Method string `json:"method" doc:"HTTP method"`
		Target struct {
			Path string `json:"path" maxbytes:"256"`
		} `json:"target"`
	} `json:"request"`
	Headers map[string]string `json:"headers" doc:"request headers, credentials redacted"`
	Stack   []uint64          `json:"stack"`
	Tags    []string          `json:"tags" maxbytes:"32"`
	Answers []struct {
		Name string  `json:"name"`
		TTL  uint32  `json:"ttl"`
		W    float64 `json:"weight"`
	} `json:"answers"`
	Query    string        `json:"query" maxbytes:"1024" doc:"query text, literals redacted"`
	Took     time.Duration `json:"took"`
	internal int
}

func TestGoTypeWithNestedMapsAndLists(t *testing.T) {
	k, ok := schema.Lookup("test_l7_go") // registered by an earlier run (-count=N)
	if !ok {
		var err error
		if k, err = schema.Register(schema.Kind{Name: "test_l7_go", Producer: "test"}, l7Sample{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var walk func(prefix string, fs []schema.Field)
	walk = func(prefix string, fs []schema.Field) {
		for _, f := range fs {
			got = append(got, prefix+f.Name+" "+f.TypeName())
			if f.Type == schema.Object {
				walk(prefix+f.Name+".", f.Fields)
			}
		}
	}
	walk("", k.Fields)
	want := []string{
		"request object", "request.method string", "request.target object", "request.target.path string",
		"headers map(string, string)", "stack list(int)", "tags list(string)", "answers list(object)",
		"query string", "took duration",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fields\n got %q\nwant %q", got, want)
	}
	if f, _ := k.Field("request.target.path"); f.MaxBytes != 256 {
		t.Errorf("path max bytes %d, want 256", f.MaxBytes)
	}
	if f, _ := k.Field("query"); f.MaxBytes != 1024 || f.Doc != "query text, literals redacted" {
		t.Errorf("query: max %d doc %q", f.MaxBytes, f.Doc)
	}
	if f, _ := k.Field("tags"); f.Elem.MaxBytes != 32 {
		t.Errorf("tags element max bytes %d, want 32", f.Elem.MaxBytes)
	}
	if f, _ := k.Field("answers"); len(f.Elem.Fields) != 3 || f.Elem.Fields[1].Name != "ttl" || f.Elem.Fields[1].Type != schema.Uint {
		t.Errorf("answers element: %+v", f.Elem)
	}

	ev := &l7Sample{Header: hdr("test_l7_go"), Headers: map[string]string{"host": "a", "x": "y"},
		Stack: []uint64{0xffffffff81000000, 7}, Tags: []string{"t1"}}
	ev.Request.Method = "GET"
	ev.Request.Target.Path = "/p"
	ev.Answers = append(ev.Answers, struct {
		Name string  `json:"name"`
		TTL  uint32  `json:"ttl"`
		W    float64 `json:"weight"`
	}{"a.example", 60, 0.5})
	for path, want := range map[string]any{
		"request.target.path": "/p", "request.method": "GET", "pid": uint64(4242), "comm": "curl",
	} {
		if v, ok := schema.Value(ev, path); !ok || v != want {
			t.Errorf("Value(%s) = %#v, %v; want %#v", path, v, ok, want)
		}
	}
	v, _ := schema.Value(ev, "answers")
	if l := v.([]any); len(l) != 1 || l[0].(map[string]any)["ttl"] != uint64(60) || l[0].(map[string]any)["name"] != "a.example" {
		t.Errorf("answers = %#v", v)
	}
	v, _ = schema.Value(ev, "stack")
	if l := v.([]any); len(l) != 2 || l[0] != uint64(0xffffffff81000000) {
		t.Errorf("stack = %#v", v)
	}
	// No declared columns: TIME, PID, COMM and the first scalar fields.
	cols, _ := schema.Columns("test_l7_go")
	if !slices.Equal(cols, []string{"TIME", "PID", "COMM", "QUERY", "TOOK"}) {
		t.Errorf("generic columns %q", cols)
	}
	if row := schema.Row(ev); !slices.Equal(row, []string{"03:04:05.678", "4242", "curl", "", "0s"}) {
		t.Errorf("generic row %q", row)
	}
}

// A field the registry cannot express fails registration, naming it.
func TestUnsupportedGoTypesFailLoudly(t *testing.T) {
	type withChan struct {
		event.Header
		C chan int `json:"c"`
	}
	type withIntMap struct {
		event.Header
		M map[string]int `json:"counts"`
	}
	type withNestedList struct {
		event.Header
		L [][]string `json:"rows"`
	}
	type withBytes struct {
		event.Header
		B []byte `json:"body"`
	}
	type withPointer struct {
		event.Header
		P *struct{ X int } `json:"p"`
	}
	type withAny struct {
		event.Header
		A any `json:"a"`
	}
	for i, c := range []struct {
		sample any
		want   string
	}{
		{withChan{}, `field C ("c"): type chan int cannot be expressed`},
		{withIntMap{}, `field M ("counts"): map map[string]int cannot be expressed`},
		{withNestedList{}, `field L ("rows"): a list of list`},
		{withBytes{}, `field B ("body"): []uint8 cannot be expressed`},
		{withPointer{}, `field P ("p"): type *struct`},
		{withAny{}, `field A ("a"): type interface {} cannot be expressed`},
	} {
		name := event.Kind("test_bad_" + string(rune('a'+i)))
		_, err := schema.Register(schema.Kind{Name: name}, c.sample)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), string(name)) {
			t.Errorf("%T: err %v, want it to contain %q and the kind", c.sample, err, c.want)
		}
		if _, ok := schema.Lookup(name); ok {
			t.Errorf("%s registered despite the error", name)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	str := schema.Field{Name: "x", Type: schema.String}
	for _, c := range []struct {
		k    schema.Kind
		want string
	}{
		{schema.Kind{Name: "exec", Fields: []schema.Field{str}}, `kind "exec" registered twice`},
		{schema.Kind{Name: "Bad-Name", Fields: []schema.Field{str}}, "lower-case snake_case"},
		{schema.Kind{Name: "t_dup", Fields: []schema.Field{str, str}}, `field "x" declared twice`},
		{schema.Kind{Name: "t_hdr", Fields: []schema.Field{{Name: "pid", Type: schema.Int}}}, `field "pid" clashes with the common header field`},
		{schema.Kind{Name: "t_max", Fields: []schema.Field{{Name: "n", Type: schema.Int, MaxBytes: 4}}}, `field "n": max bytes applies to strings only`},
		{schema.Kind{Name: "t_list", Fields: []schema.Field{{Name: "l", Type: schema.List}}}, `field "l": a list needs an element type`},
		{schema.Kind{Name: "t_ll", Fields: []schema.Field{{Name: "l", Type: schema.List, Elem: &schema.Field{Type: schema.Map}}}}, "a list of map(string, string) cannot be expressed"},
		{schema.Kind{Name: "t_obj", Fields: []schema.Field{{Name: "o", Type: schema.Object}}}, `field "o": an object needs fields`},
		{schema.Kind{Name: "t_type", Fields: []schema.Field{{Name: "z", Type: 99}}}, `field "z": unknown type Type(99)`},
		{schema.Kind{Name: "t_col", Fields: []schema.Field{str}, Columns: []schema.Column{{Header: "Y", Field: "y"}}}, `column Y: no field "y"`},
	} {
		if _, err := schema.Register(c.k, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.k.Name, err, c.want)
		}
	}
}

// A kind built at run time (a user-defined probe) and its Dynamic events.
func TestDynamicEvents(t *testing.T) {
	k, err := schema.Register(schema.Kind{Name: "test_dyn_http", Producer: "user", Fields: []schema.Field{
		{Name: "method", Type: schema.String, MaxBytes: 8, Doc: "request method"},
		{Name: "status", Type: schema.Uint},
		{Name: "headers", Type: schema.Map},
		{Name: "server", Type: schema.Object, Fields: []schema.Field{{Name: "addr", Type: schema.String}, {Name: "port", Type: schema.Int}}},
		{Name: "codes", Type: schema.List, Elem: &schema.Field{Type: schema.Int}},
		{Name: "spans", Type: schema.List, Elem: &schema.Field{Type: schema.Object, Fields: []schema.Field{{Name: "name", Type: schema.String}}}},
		{Name: "took", Type: schema.Duration},
		{Name: "ok", Type: schema.Bool},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer schema.Unregister(k.Name)
	d, err := schema.NewDynamic(k)
	if err != nil {
		t.Fatal(err)
	}
	d.Header = hdr("ignored") // the kind comes from the schema
	must := func(name string, v any) {
		t.Helper()
		if err := d.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	must("method", "GET")
	must("status", 200)
	must("headers", map[string]string{"host": "example.com"})
	must("server", map[string]any{"addr": "10.0.0.2", "port": 8080})
	must("codes", []int{1, 2})
	must("spans", []map[string]any{{"name": "db"}})
	must("took", 1500*time.Microsecond)
	for name, c := range map[string]struct {
		v    any
		want string
	}{
		"method":  {"PROPFINDX", `test_dyn_http: field "method": 9 bytes exceed its declared maximum of 8`},
		"status":  {-1, `field "status" is unsigned, got -1`},
		"ok":      {"yes", `field "ok" is bool, not string`},
		"server":  {map[string]any{"host": "x"}, `field "server" has no field "host"`},
		"codes":   {[]string{"a"}, `field "codes[0]" is int, not string`},
		"headers": {map[string]int{"a": 1}, `field "headers" is map(string, string), not map[string]int`},
		"nope":    {1, `test_dyn_http: no field "nope"`},
	} {
		if err := d.Set(name, c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Set(%s, %v): %v, want %q", name, c.v, err, c.want)
		}
	}
	if v, ok := d.Get("server.port"); !ok || v != int64(8080) {
		t.Errorf("server.port = %#v %v", v, ok)
	}
	if v, ok := d.Get("ok"); !ok || v != false {
		t.Errorf("unset ok = %#v %v", v, ok)
	}
	if _, ok := d.Get("server.nope"); ok {
		t.Error("unknown nested path resolved")
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"test_dyn_http","time":"2026-01-02T03:04:05.6789Z","pid":4242,"ppid":1,"parent_comm":"","uid":1000,"gid":0,"comm":"curl","start_time_ns":0,"cgroup_id":0,` +
		`"method":"GET","status":200,"headers":{"host":"example.com"},"server":{"addr":"10.0.0.2","port":8080},"codes":[1,2],"spans":[{"name":"db"}],"took":1500000,"ok":false}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	if row := schema.Row(d); !slices.Equal(row, []string{"03:04:05.678", "4242", "curl", "GET", "200", "1.5ms", "false"}) {
		t.Errorf("row %q", row)
	}
	if _, err := schema.NewDynamic(mustLookup(t, "exec")); err == nil {
		t.Error("a dynamic event of a Go-typed kind was allowed")
	}
	if s, cut := schema.Truncate("héllo", 2); s != "h" || !cut {
		t.Errorf("Truncate = %q %v, want a cut before the split rune", s, cut)
	}
}

func mustLookup(t *testing.T, k event.Kind) *schema.Kind {
	t.Helper()
	sk, ok := schema.Lookup(k)
	if !ok {
		t.Fatalf("kind %s not registered", k)
	}
	return sk
}

func TestBuiltinKindsAndSources(t *testing.T) {
	for _, k := range []event.Kind{"accept", "close", "connect", "exec", "exit", "fork", "open", "process_lifetime"} {
		sk := mustLookup(t, k)
		if sk.GoType() == nil || sk.Producer == "" || sk.Doc == "" {
			t.Errorf("%s: go type %v producer %q doc %q", k, sk.GoType(), sk.Producer, sk.Doc)
		}
		for _, f := range sk.Fields {
			if f.Doc == "" {
				t.Errorf("%s.%s has no doc tag", k, f.Name)
			}
		}
	}
	if got := schema.Sources("process_lifetime", "open", "exec"); !slices.Equal(got, []event.Kind{"exec", "exit", "open"}) {
		t.Errorf("Sources = %v", got)
	}
}

// JSON output and the registry agree: a fully populated event of every
// built-in kind marshals to the common fields then its registered fields,
// in registry order, with no key the registry does not know.
func TestJSONKeysFollowRegistry(t *testing.T) {
	for _, name := range []event.Kind{"accept", "close", "connect", "exec", "exit", "fork", "open", "process_lifetime"} {
		sk := mustLookup(t, name)
		v := reflect.New(sk.GoType())
		fill(v.Elem())
		b, err := json.Marshal(v.Interface())
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range schema.Header() {
			want = append(want, f.Name)
		}
		for _, f := range sk.Fields {
			want = append(want, f.Name)
		}
		if got := topKeys(t, b); !slices.Equal(got, want) {
			t.Errorf("%s JSON keys\n got %q\nwant %q", name, got, want)
		}
	}
}

// fill sets every leaf of a struct to a non-zero value, so omitempty keys
// appear too.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(tm))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	}
}

func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	depth := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch x := tok.(type) {
		case json.Delim:
			if x == '{' || x == '[' {
				depth++
				expectKey = depth == 1
			} else {
				depth--
				expectKey = depth == 1 // a value just ended
			}
			continue
		case string:
			if depth == 1 && expectKey {
				keys = append(keys, x)
				expectKey = false
				continue
			}
		}
		expectKey = depth == 1
	}
	return keys
}
