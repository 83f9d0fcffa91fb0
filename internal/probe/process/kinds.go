package process

import (
	"strconv"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// kinds are the event kinds this probe emits, registered in the schema
// with their default `vigil trace` tables.
var kinds = schema.Names(
	schema.MustRegister(schema.Kind{
		Name:     event.KindExec,
		Producer: Name,
		Doc:      "A successful or failed execve/execveat, with argv (like execsnoop).",
		Columns: []schema.Column{
			{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "PPID", Field: "ppid"},
			{Header: "UID", Field: "uid"}, {Header: "COMM", Field: "comm"},
			{Header: "RET", Format: func(ev event.Event) string {
				e := ev.(*event.Exec)
				if e.Error != "" {
					return e.Error
				}
				return strconv.Itoa(int(e.Ret))
			}},
			{Header: "ARGS", Format: func(ev event.Event) string {
				e := ev.(*event.Exec)
				args := schema.QuoteArgs(e.Args)
				if e.ArgsTruncated {
					args += " ..."
				}
				return args
			}},
		},
	}, event.Exec{}),
	schema.MustRegister(schema.Kind{
		Name:     event.KindFork,
		Producer: Name,
		Doc:      "The creation of a new process (not a thread).",
	}, event.Fork{}),
	schema.MustRegister(schema.Kind{
		Name:     event.KindExit,
		Producer: Name,
		Doc:      "The end of a whole process (its last thread), with exit code or signal and lifetime (like exitsnoop).",
		Columns: []schema.Column{
			{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "PPID", Field: "ppid"},
			{Header: "COMM", Field: "comm"},
			{Header: "CODE", Field: "exit_code"},
			{Header: "SIGNAL", Format: func(ev event.Event) string { return strconv.Itoa(ev.(*event.Exit).Signal) }},
			{Header: "AGE_S", Field: "lifetime_seconds"},
		},
	}, event.Exit{}),
)
