package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/kernel"
)

func registerFeatures(app *kingpin.Application) {
	cmd := app.Command("features", "Probe the kernel's BPF features and show which hook each program attaches to (needs root).")
	output := cmd.Flag("output", "Output format: table or json.").Short('o').Default("table").Enum("table", "json")
	configFile := cmd.Flag("config", "Config file whose enabled probes and disabled hooks to use.").Short('c').String()
	cmd.Action(func(*kingpin.ParseContext) error {
		cfg, err := loadConfig(*configFile)
		if err != nil {
			return err
		}
		if err := kernel.CheckPrivileges(); err != nil {
			return err
		}
		feats := kernel.Probe()
		cfg.Log.Level = "error"
		a, err := agent.New(cfg, newLogger(cfg.Log), nil)
		if err != nil {
			return err
		}
		if err := a.Start(); err != nil {
			return err
		}
		var progs []kernel.ProgramStatus
		for _, o := range a.Objects() {
			progs = append(progs, o.Status()...)
		}
		_ = a.Close()
		if *output == "json" {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				*kernel.Features
				Programs []kernel.ProgramStatus `json:"programs"`
			}{feats, progs})
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "KERNEL\t%s\n\nFEATURE\tOK\tDETAIL\n", feats.Kernel)
		for _, f := range feats.List {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, yesNo(f.OK), firstLine(f.Detail))
		}
		fmt.Fprintf(tw, "\nPROBE\tPROGRAM\tREQUIRED\tHOOK\tTARGET\tNOTE\n")
		for _, p := range progs {
			hook, note := string(p.Hook), p.Detail
			if !p.Attached {
				hook = "-"
			}
			if len(p.Tried) > 0 {
				note = "fell back past: " + firstLine(strings.Join(p.Tried, "; "))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Probe, p.Name, yesNo(p.Required), hook, p.Target, note)
		}
		return tw.Flush()
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
