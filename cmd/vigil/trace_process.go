package main

import (
	"strconv"
	"strings"

	"github.com/vigilproject/vigil/internal/event"
)

const timeLayout = "15:04:05.000"

func init() { tracers = append(tracers, execTracer, exitTracer) }

var execTracer = tracer{
	name:   "exec",
	help:   "Trace execs (like execsnoop): successful and failed execve/execveat with argv.",
	probe:  "process",
	kinds:  []event.Kind{event.KindExec},
	header: []string{"TIME", "PID", "PPID", "UID", "COMM", "RET", "ARGS"},
	row: func(ev event.Event) []string {
		e := ev.(*event.Exec)
		args := quoteArgs(e.Args)
		if e.ArgsTruncated {
			args += " ..."
		}
		ret := strconv.Itoa(int(e.Ret))
		if e.Error != "" {
			ret = e.Error
		}
		return []string{e.Time.Format(timeLayout), u32(e.PID), u32(e.PPID), u32(e.UID), e.Comm, ret, args}
	},
}

var exitTracer = tracer{
	name:   "exit",
	help:   "Trace process exits (like exitsnoop): exit code or signal and lifetime.",
	probe:  "process",
	kinds:  []event.Kind{event.KindExit},
	header: []string{"TIME", "PID", "PPID", "COMM", "CODE", "SIGNAL", "AGE_S"},
	row: func(ev event.Event) []string {
		e := ev.(*event.Exit)
		return []string{e.Time.Format(timeLayout), u32(e.PID), u32(e.PPID), e.Comm, strconv.Itoa(e.ExitCode), strconv.Itoa(e.Signal), strconv.FormatFloat(e.LifetimeSeconds, 'f', 3, 64)}
	},
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// quoteArgs joins argv for display, quoting arguments with spaces.
func quoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
