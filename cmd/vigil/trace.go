package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/schema"
)

// tracer describes one `vigil trace` subcommand.
type tracer struct {
	name  string
	help  string
	probe string
	// probes, when set instead of probe, are all the probes the kinds need.
	probes []string
	// kinds are the event kinds shown; their table columns come from the
	// schema registry (the first kind's headers head the table).
	kinds []event.Kind
	// flags adds kind-specific filters; the returned func reports whether
	// an event passes them.
	flags func(cmd *kingpin.CmdClause) func(e event.Event) bool
	// configure, when set, adjusts the probe's config from the parsed
	// flags before it loads, so filters can run in the kernel.
	configure func(cfg *config.Config, o *traceOpts) error
}

// tracers lists the trace subcommands; a probe with events appends its own
// from an init function in its trace_<probe>.go file.
var tracers []tracer

type traceOpts struct {
	config    string
	output    string
	pid       uint32
	comm      string
	container string
	queue     int
}

// kindTracers gives every registered event kind that no tracer above shows
// (derived kinds, kinds of newer probes) a `vigil trace <kind>` of its own,
// with the table columns its schema declares.
func kindTracers() []tracer {
	shown := map[event.Kind]bool{}
	for _, t := range tracers {
		for _, k := range t.kinds {
			shown[k] = true
		}
	}
	var out []tracer
	for _, k := range schema.Kinds() {
		sk, ok := schema.Lookup(k)
		if shown[k] || !ok {
			continue
		}
		var probes []string
		for _, src := range schema.Sources(k) {
			for _, spec := range probe.All() {
				if slices.Contains(spec.Events, src) && !slices.Contains(probes, spec.Name) {
					probes = append(probes, spec.Name)
				}
			}
		}
		if len(probes) == 0 {
			continue // produced at run time by something a trace cannot start
		}
		out = append(out, tracer{name: string(k), help: "Trace " + string(k) + " events: " + sk.Doc, probes: probes, kinds: []event.Kind{k}})
	}
	return out
}

func registerTrace(app *kingpin.Application) {
	cmd := app.Command("trace", "Stream live events from the kernel (loads only the probe it needs; needs root).")
	for _, t := range append(slices.Clone(tracers), kindTracers()...) {
		t := t
		sub := cmd.Command(t.name, t.help)
		o := &traceOpts{}
		sub.Flag("config", "Config file for probe settings (defaults when omitted).").Short('c').StringVar(&o.config)
		sub.Flag("output", "Output format: table (aligned columns) or json (one object per line).").Short('o').Default("table").EnumVar(&o.output, "table", "json")
		sub.Flag("pid", "Only events of this process id.").Short('p').Uint32Var(&o.pid)
		sub.Flag("comm", "Only events whose command name (comm) is exactly this.").StringVar(&o.comm)
		sub.Flag("container", "Only events from containers whose id starts with this (\"host\" for no container).").StringVar(&o.container)
		sub.Flag("queue", "Events buffered between the probe and the printer; overflow is counted and reported.").Default("16384").IntVar(&o.queue)
		var extra func(event.Event) bool
		if t.flags != nil {
			extra = t.flags(sub)
		}
		sub.Action(func(*kingpin.ParseContext) error { return runTrace(t, o, extra) })
	}
}

// withProcessProbe adds the process probe (when enabled) to a trace of other
// kinds: it feeds the process cache with every exec and fork, so events of
// short-lived processes carry their executable and container. Its own
// events are built only if the trace subscribes to them.
func withProcessProbe(cfg *config.Config, names []string) []string {
	const process = "process"
	if pc, ok := cfg.ProbeConfigs[process]; !ok || !pc.IsEnabled() || slices.Contains(names, process) {
		return names
	}
	return append(slices.Clone(names), process)
}

func (t tracer) probeNames() []string {
	if len(t.probes) > 0 {
		return t.probes
	}
	return []string{t.probe}
}

func (o *traceOpts) match(e event.Event) bool {
	h := e.EventHeader()
	if o.pid != 0 && h.PID != o.pid {
		return false
	}
	if o.comm != "" && h.Comm != o.comm {
		return false
	}
	if o.container != "" {
		if o.container == "host" {
			return h.Container == ""
		}
		if !strings.HasPrefix(h.Container, o.container) {
			return false
		}
	}
	return true
}

func runTrace(t tracer, o *traceOpts, extra func(event.Event) bool) error {
	cfg, err := loadConfig(o.config)
	if err != nil {
		return err
	}
	cfg.Log.Level = "warn"
	if t.configure != nil {
		if err := t.configure(cfg, o); err != nil {
			return err
		}
	}
	a, err := agent.Open(cfg, newLogger(cfg.Log), agent.Options{Probes: withProcessProbe(cfg, t.probeNames())})
	if err != nil {
		return err
	}
	sub := a.Bus.Subscribe("trace", o.queue, t.kinds...)
	lost := newLossReporter(a, sub, "--queue or probes."+strings.Join(t.probeNames(), "|")+".ringbuf_size")
	return a.Main(func(ctx context.Context) error {
		out := bufio.NewWriter(os.Stdout)
		defer out.Flush()
		var tw *tabwriter.Writer
		enc := json.NewEncoder(out)
		if o.output == "table" {
			tw = tabwriter.NewWriter(out, 0, 8, 1, ' ', 0)
			header, _ := schema.Columns(t.kinds[0])
			fmt.Fprintln(tw, strings.Join(header, "\t"))
			tw.Flush()
		}
		out.Flush()
		print := func(e event.Event) error {
			if !o.match(e) || (extra != nil && !extra(e)) {
				return nil
			}
			if tw != nil {
				fmt.Fprintln(tw, strings.Join(schema.Row(e), "\t"))
				return tw.Flush()
			}
			return enc.Encode(e)
		}
		reportLost := func() error {
			for _, r := range lost.check(os.Stderr) {
				if tw == nil {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
			}
			return nil
		}
		// Output is batched while events pour in; the ticker bounds how long a
		// printed line can wait in the buffer when the queue never drains (a
		// filter that matches rarely on a busy host).
		flush := time.NewTicker(traceFlushEvery)
		defer flush.Stop()
		lossTick := time.NewTicker(lossEvery)
		defer lossTick.Stop()
		for {
			select {
			case <-ctx.Done():
				// Print what is already queued, then account for the rest.
				for len(sub.C()) > 0 {
					if err := print(<-sub.C()); err != nil {
						return err
					}
				}
				err := reportLost()
				out.Flush()
				lost.summary(os.Stderr)
				return err
			case <-flush.C:
				out.Flush()
			case <-lossTick.C:
				if err := reportLost(); err != nil {
					return err
				}
				out.Flush()
			case e := <-sub.C():
				if err := print(e); err != nil {
					return err
				}
				if len(sub.C()) == 0 {
					out.Flush()
				}
			}
		}
	})
}

// traceFlushEvery is the longest a printed event waits in the output buffer.
const traceFlushEvery = 100 * time.Millisecond
