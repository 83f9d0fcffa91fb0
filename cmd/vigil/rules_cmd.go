package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"go.yaml.in/yaml/v3"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/eventrules"
	"github.com/vigilproject/vigil/internal/rules"
)

// registerRules adds `vigil rules`: checking rule files of both kinds
// (Prometheus rule groups and event rules) and listing event-rule fields.
func registerRules(app *kingpin.Application) {
	cmd := app.Command("rules", "Check metric and event rule files.")
	check := cmd.Command("check", `Validate rule files; errors and warnings name file and line. Prometheus rule files
(a mapping with "groups:", plus vigil's anomaly: shorthand) and event rule files (a list
of rule/sequence/macro/list items) are told apart by their shape. Event rule files given
together share their macros and lists.`)
	expand := check.Flag("expand", "Print each Prometheus rule file as standard Prometheus YAML with anomaly: rules expanded to PromQL.").Bool()
	files := check.Arg("file", "Rule files to check.").Required().ExistingFiles()
	check.Action(func(*kingpin.ParseContext) error { return checkRuleFiles(*files, *expand) })

	fields := cmd.Command("fields", "List the fields event rules can use, per event kind.")
	kind := fields.Arg("event", "Event kind (all when omitted).").String()
	fields.Action(func(*kingpin.ParseContext) error {
		kinds := eventrules.Kinds()
		if *kind != "" {
			kinds = []event.Kind{event.Kind(*kind)}
		}
		for _, k := range kinds {
			f := eventrules.Fields(k)
			if f == nil {
				return fmt.Errorf("unknown event kind %q (known: %v)", k, eventrules.Kinds())
			}
			fmt.Printf("%s:\n  %s\n", k, strings.Join(f, "\n  "))
		}
		return nil
	})
}

// isEventRuleFile tells an event rule file (a YAML list) from a Prometheus
// rule file (a mapping). Unparsable files go to the event loader, which
// reports the YAML error with its line.
func isEventRuleFile(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) == 0 {
		return true, nil
	}
	return doc.Content[0].Kind != yaml.MappingNode, nil
}

func checkRuleFiles(files []string, expand bool) error {
	failed := 0
	var eventFiles []string
	for _, f := range files {
		isEvent, err := isEventRuleFile(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			failed++
			continue
		}
		if isEvent {
			eventFiles = append(eventFiles, f)
			continue
		}
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
		if expand {
			if len(files) > 1 {
				fmt.Printf("# %s\n", f)
			}
			os.Stdout.Write(p.Expanded) //nolint:errcheck
			fmt.Fprintf(os.Stderr, "%s: OK, %d alerting and %d recording rules\n", f, alerting, recording)
			continue
		}
		fmt.Printf("%s: OK, %d alerting and %d recording rules\n", f, alerting, recording)
	}
	if len(eventFiles) > 0 {
		rs, ds := eventrules.LoadFiles(eventFiles, eventrules.DefaultOptions())
		for _, d := range ds {
			fmt.Fprintln(os.Stderr, d)
		}
		if rs == nil {
			failed += len(eventFiles)
		} else {
			fmt.Printf("%s: OK, event rules: %s\n", strings.Join(eventFiles, ", "), rs.Summary())
		}
	}
	if failed > 0 {
		return errors.New(plural(failed, len(files)))
	}
	return nil
}

func plural(failed, total int) string {
	return fmt.Sprintf("%d of %d rule files invalid", failed, total)
}
