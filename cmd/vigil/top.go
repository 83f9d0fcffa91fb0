package main

import "github.com/alecthomas/kingpin/v2"

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
