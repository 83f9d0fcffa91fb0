package main

import (
	"context"
	"fmt"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/probe"
)

// topper is one `vigil top` view: a live, refreshing terminal table.
type topper struct {
	name string
	help string
	// setup declares the view's flags and returns the function that runs it.
	setup func(cmd *kingpin.CmdClause) func() error
}

// toppers lists the views; a probe appends its own from an init function in
// its top_<probe>.go file.
var toppers []topper

func registerTop(app *kingpin.Application) {
	if len(toppers) == 0 {
		return
	}
	cmd := app.Command("top", "Live, refreshing views of kernel activity (needs root).")
	for _, t := range toppers {
		sub := cmd.Command(t.name, t.help)
		run := t.setup(sub)
		sub.Action(func(*kingpin.ParseContext) error { return run() })
	}
}

// checkRefresh validates the flags every refreshing view shares.
// rowsFlag names the view's row-count flag.
func checkRefresh(interval time.Duration, rowsFlag string, rows int) error {
	if interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %s: must be at least 100ms", interval)
	}
	if rows < 1 {
		return fmt.Errorf("--%s %d: must be at least 1", rowsFlag, rows)
	}
	return nil
}

// runProbeView runs one probe for a view: it loads the config, lets
// configure adjust the probe's section (then validates it), starts the probe
// through the agent runtime and hands it to view until interrupted.
func runProbeView[C probe.Config, P probe.Probe](configFile, name string, configure func(C), view func(context.Context, *agent.Agent, P) error) error {
	cfg, err := loadConfig(configFile)
	if err != nil {
		return err
	}
	pc, ok := cfg.ProbeConfigs[name].(C)
	if !ok {
		return fmt.Errorf("no configuration for probe %s", name)
	}
	configure(pc)
	if err := pc.Validate(); err != nil {
		return fmt.Errorf("top %s: %w", name, err)
	}
	cfg.Log.Level = "warn"
	a, err := agent.Open(cfg, newLogger(cfg.Log), agent.Options{Probes: []string{name}})
	if err != nil {
		return err
	}
	return a.Main(func(ctx context.Context) error {
		p, _ := a.Probe(name)
		return view(ctx, a, p.(P))
	})
}
