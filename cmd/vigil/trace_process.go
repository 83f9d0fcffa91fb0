package main

import (
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

const timeLayout = schema.TimeLayout

func init() { tracers = append(tracers, execTracer, exitTracer) }

var execTracer = tracer{
	name:  "exec",
	help:  "Trace execs (like execsnoop): successful and failed execve/execveat with argv.",
	probe: "process",
	kinds: []event.Kind{event.KindExec},
}

var exitTracer = tracer{
	name:  "exit",
	help:  "Trace process exits (like exitsnoop): exit code or signal and lifetime.",
	probe: "process",
	kinds: []event.Kind{event.KindExit},
}
