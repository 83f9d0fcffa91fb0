package main

//go:generate sh -c "go run . docs events > ../../docs/events.md"

import (
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/schema"
)

// registerDocs adds `vigil docs events`: the reference of every event kind
// built into this binary, from the schema registry (docs/events.md).
func registerDocs(app *kingpin.Application) {
	cmd := app.Command("docs", "Print generated reference documentation.")
	events := cmd.Command("events", "Markdown reference of every event kind: fields, types, docs, trace columns (docs/events.md).")
	events.Action(func(*kingpin.ParseContext) error { return schema.Markdown(os.Stdout) })
}
