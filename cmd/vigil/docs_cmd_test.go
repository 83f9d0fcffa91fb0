package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/vigilproject/vigil/internal/schema"
)

// docs/events.md is generated from the schema registry; it must match what
// this build registers (regenerate with go generate ./cmd/vigil).
func TestEventsDocIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := schema.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), committed) {
		t.Fatal("docs/events.md is stale: run go generate ./cmd/vigil")
	}
	for _, k := range []string{"## exec", "## process_lifetime", "`vigil trace` columns: TIME PID PPID UID COMM RET ARGS"} {
		if !bytes.Contains(committed, []byte(k)) {
			t.Errorf("docs/events.md lacks %q", k)
		}
	}
}
