package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/rules"
)

func registerRules(app *kingpin.Application) {
	cmd := app.Command("rules", "Check metric rule files.")
	check := cmd.Command("check", "Validate Prometheus rule files (plus vigil's anomaly: shorthand); errors name file and line.")
	expand := check.Flag("expand", "Print each file as standard Prometheus YAML with anomaly: rules expanded to PromQL.").Bool()
	files := check.Arg("file", "Rule files to check.").Required().ExistingFiles()
	check.Action(func(*kingpin.ParseContext) error {
		failed := 0
		for _, f := range *files {
			p, errs := rules.LoadFile(f)
			if errs != nil {
				for _, e := range errs {
					fmt.Fprintln(os.Stderr, e)
				}
				failed++
				continue
			}
			alerting, recording := 0, 0
			for _, g := range p.Groups.Groups {
				for _, r := range g.Rules {
					if r.Alert != "" {
						alerting++
					} else {
						recording++
					}
				}
			}
			if *expand {
				if len(*files) > 1 {
					fmt.Printf("# %s\n", f)
				}
				os.Stdout.Write(p.Expanded) //nolint:errcheck
				fmt.Fprintf(os.Stderr, "%s: OK, %d alerting and %d recording rules\n", f, alerting, recording)
				continue
			}
			fmt.Printf("%s: OK, %d alerting and %d recording rules\n", f, alerting, recording)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d rule files invalid", failed, len(*files))
		}
		return nil
	})
}
