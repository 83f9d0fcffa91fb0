package eventrules

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/vigilproject/vigil/internal/event"
	evschema "github.com/vigilproject/vigil/internal/schema"
)

// Every schema type has a CEL form: a kind the registry accepts can always
// be used in rules (no field is silently dropped).
func TestEverySchemaTypeHasCELForm(t *testing.T) {
	obj := []evschema.Field{{Name: "a", Type: evschema.String}}
	for _, f := range []evschema.Field{
		{Type: evschema.Bool}, {Type: evschema.Int}, {Type: evschema.Uint}, {Type: evschema.Double}, {Type: evschema.String},
		{Type: evschema.Time}, {Type: evschema.Duration}, {Type: evschema.Map},
		{Type: evschema.List, Elem: &evschema.Field{Type: evschema.String}},
		{Type: evschema.List, Elem: &evschema.Field{Type: evschema.Uint}},
		{Type: evschema.List, Elem: &evschema.Field{Type: evschema.Object, Fields: obj}},
	} {
		if _, err := celType(&f); err != nil {
			t.Errorf("%s: %v", f.TypeName(), err)
		}
	}
	for _, k := range evschema.Kinds() {
		sk, _ := evschema.Lookup(k)
		if _, err := buildSchema(sk); err != nil {
			t.Errorf("kind %s: %v", k, err)
		}
	}
}

// l7Event is a Go-typed kind with the shapes L7 events need.
type l7Event struct {
	event.Header
	Request struct {
		Method string `json:"method"`
		Target struct {
			Path string `json:"path"`
		} `json:"target"`
	} `json:"request"`
	Headers map[string]string `json:"headers"`
	Stack   []uint64          `json:"stack"`
	Answers []l7Answer        `json:"answers"`
	Took    time.Duration     `json:"took"`
}

type l7Answer struct {
	Name string `json:"name"`
	TTL  uint32 `json:"ttl"`
}

// Kinds stay registered for the life of the process (-count=N reruns).
var registerTestKinds sync.Once

func TestRulesOnNestedMapsAndLists(t *testing.T) {
	registerTestKinds.Do(func() {
		evschema.MustRegister(evschema.Kind{Name: "test_rules_l7", Producer: "test"}, l7Event{})
		evschema.MustRegister(evschema.Kind{Name: "test_rules_dyn", Producer: "test", Fields: []evschema.Field{
			{Name: "request", Type: evschema.Object, Fields: []evschema.Field{{Name: "method", Type: evschema.String}, {Name: "status", Type: evschema.Uint}}},
			{Name: "headers", Type: evschema.Map},
			{Name: "codes", Type: evschema.List, Elem: &evschema.Field{Type: evschema.Int}},
			{Name: "answers", Type: evschema.List, Elem: &evschema.Field{Type: evschema.Object, Fields: []evschema.Field{{Name: "name", Type: evschema.String}, {Name: "ttl", Type: evschema.Uint}}}},
			{Name: "tls", Type: evschema.Bool},
		}}, nil)
	})
	src := `
- rule: GoNested
  event: test_rules_l7
  condition: evt.request.method == "POST" && evt.request.target.path.startsWith("/admin")
  output: '%{evt.request.method} %{evt.request.target.path} host=%{evt.headers["host"]}'
- rule: GoMap
  event: test_rules_l7
  condition: '"authorization" in evt.headers && evt.headers["host"] == "db.internal"'
  output: auth
- rule: GoUintList
  event: test_rules_l7
  condition: 18446744073709551 in evt.stack && size(evt.stack) == 2
  output: stack
- rule: GoObjectList
  event: test_rules_l7
  condition: evt.answers.exists(a, a.name == "evil.example" && a.ttl < 60) && evt.took > duration("1s")
  output: answers
- rule: DynAll
  event: test_rules_dyn
  condition: >-
    evt.request.method == "GET" && evt.request.status >= 500 && evt.headers["host"] == "api" &&
    503 in evt.codes && evt.answers.exists(a, a.ttl == 5) && evt.tls
  output: '%{evt.request.method} %{evt.request.status} %{evt.codes}'
`
	rs, ds := Compile("l7.yaml", []byte(src), DefaultOptions())
	if rs == nil {
		t.Fatalf("compile: %v", ds)
	}
	rec := &recorder{}
	e := NewEngine(nil, rec)
	e.Install(rs)

	ev := &l7Event{Header: hdr("test_rules_l7", 7, 0), Headers: map[string]string{"host": "db.internal", "authorization": "<redacted>"},
		Stack: []uint64{18446744073709551, 2}, Answers: []l7Answer{{"ok.example", 300}, {"evil.example", 30}}, Took: 2 * time.Second}
	ev.Request.Method, ev.Request.Target.Path = "POST", "/admin/users"
	e.Handle(ev)
	quiet := &l7Event{Header: hdr("test_rules_l7", 8, 0), Headers: map[string]string{"host": "x"}, Stack: []uint64{1}, Answers: []l7Answer{{"evil.example", 600}}}
	quiet.Request.Method, quiet.Request.Target.Path = "POST", "/public"
	e.Handle(quiet)

	d := mustDyn(t, "test_rules_dyn", map[string]any{
		"request": map[string]any{"method": "GET", "status": 503}, "headers": map[string]string{"host": "api"},
		"codes": []int64{200, 503}, "answers": []map[string]any{{"name": "a", "ttl": 5}}, "tls": true,
	})
	e.Handle(d)
	e.Handle(mustDyn(t, "test_rules_dyn", map[string]any{"request": map[string]any{"method": "GET", "status": 200}, "tls": true}))
	e.Flush()

	for name, summary := range map[string]string{
		"GoNested":     "POST /admin/users host=db.internal",
		"GoMap":        "auth",
		"GoUintList":   "stack",
		"GoObjectList": "answers",
		"DynAll":       "GET 503 200 503",
	} {
		got := rec.named(name)
		if len(got) != 1 {
			t.Errorf("%s: %d alerts, want 1", name, len(got))
			continue
		}
		if got[0].Annotations["summary"] != summary {
			t.Errorf("%s: summary %q, want %q", name, got[0].Annotations["summary"], summary)
		}
		if name == "DynAll" && !strings.Contains(got[0].Annotations["event"], `"request":{"method":"GET","status":503}`) {
			t.Errorf("DynAll event JSON %s", got[0].Annotations["event"])
		}
	}

	f := strings.Join(Fields("test_rules_dyn"), "\n")
	for _, want := range []string{"evt.request.method string", "evt.request.status int", "evt.headers map(string, string)",
		"evt.codes list(int)", "evt.answers list(map(string, dyn))", "evt.tls bool"} {
		if !strings.Contains(f, want+"\n") && !strings.HasSuffix(f, want) {
			t.Errorf("rules fields lacks %q:\n%s", want, f)
		}
	}
	if !schemaFor("test_rules_l7").byName["evt.stack"].typ.IsExactType(cel.ListType(cel.IntType)) {
		t.Error("[]uint64 is not list(int)")
	}
}

func mustDyn(t *testing.T, kind event.Kind, vals map[string]any) *evschema.Dynamic {
	t.Helper()
	sk, _ := evschema.Lookup(kind)
	d, err := evschema.NewDynamic(sk)
	if err != nil {
		t.Fatal(err)
	}
	d.Header = hdr(kind, 9, 0)
	for k, v := range vals {
		if err := d.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
