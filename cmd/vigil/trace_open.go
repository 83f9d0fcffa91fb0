package main

import (
	"fmt"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe/open"
)

func init() { tracers = append(tracers, openTracer()) }

func openTracer() tracer {
	var failed bool
	var prefixes []string
	var unresolved bool
	return tracer{
		name: "open",
		help: "Trace file opens (like opensnoop): open, openat, openat2, creat with the absolute path, flags, fd or errno. " +
			"--pid, --comm, --container, --failed and --path-prefix filter in the kernel.",
		probe: open.Name,
		kinds: []event.Kind{event.KindOpen},
		flags: func(cmd *kingpin.CmdClause) func(event.Event) bool {
			cmd.Flag("failed", "Only failed opens.").Short('x').BoolVar(&failed)
			cmd.Flag("path-prefix", "Only paths starting with this (absolute, repeatable, at most 8 of 128 bytes; relative paths that could not be resolved never match).").StringsVar(&prefixes)
			cmd.Flag("no-resolve", "Do not resolve relative paths in the kernel; report them as passed.").BoolVar(&unresolved)
			return nil
		},
		configure: func(cfg *config.Config, o *traceOpts) error {
			c, ok := cfg.ProbeConfigs[open.Name].(*open.Config)
			if !ok {
				return fmt.Errorf("no configuration for probe %s", open.Name)
			}
			c.Enabled, c.Events = true, true
			c.FailedOnly = c.FailedOnly || failed
			c.ResolvePaths = c.ResolvePaths && !unresolved
			if len(prefixes) > 0 {
				c.PathPrefixes = prefixes
			}
			if o.pid != 0 {
				c.PIDs = []uint32{o.pid}
			}
			if o.comm != "" {
				c.Comm = o.comm
			}
			if o.container != "" && o.container != "host" {
				c.Containers = []string{o.container}
			}
			if err := c.Validate(); err != nil {
				return fmt.Errorf("trace open: %w", err)
			}
			return nil
		},
	}
}
