package open

import (
	"fmt"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// kinds are the event kinds this probe emits, registered in the schema
// with their default `vigil trace` table.
var kinds = schema.Names(
	schema.MustRegister(schema.Kind{
		Name:     event.KindOpen,
		Producer: Name,
		Doc:      "A completed open, openat, openat2 or creat, with the absolute path, flags and fd or errno (like opensnoop).",
		Columns: []schema.Column{
			{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "COMM", Field: "comm"},
			{Header: "FD", Field: "fd"},
			{Header: "ERR", Format: func(ev event.Event) string {
				if e := ev.(*event.Open); e.Error != "" {
					return e.Error
				}
				return "0"
			}},
			{Header: "FLAGS", Format: func(ev event.Event) string {
				e := ev.(*event.Open)
				if e.Mode != 0 {
					return e.FlagNames + fmt.Sprintf(" %#o", e.Mode)
				}
				return e.FlagNames
			}},
			{Header: "PATH", Format: func(ev event.Event) string {
				e := ev.(*event.Open)
				path := e.Path
				if e.PathTruncated {
					path += "..."
				}
				if !e.PathResolved {
					path += " (relative, unresolved)"
				}
				return path
			}},
		},
	}, event.Open{}),
)
