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
	cmd := app.Command("rules", "Work with alerting rule files.")
	check := cmd.Command("check", `Check rule files: Prometheus rule groups (a mapping with "groups:") and event rules
(a list of rule/sequence/macro/list items) are told apart by their shape. Event rule
files given together share their macros and lists. Errors and warnings name file:line;
the exit status is 1 when any file has an error.`)
	files := check.Arg("file", "Rule files.").Required().ExistingFiles()
	check.Action(func(*kingpin.ParseContext) error { return checkRuleFiles(*files) })

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

// ruleFileKind tells a Prometheus rule file from an event rule file.
func ruleFileKind(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) == 0 {
		return "events", nil // the event loader reports the YAML error with its line
	}
	switch doc.Content[0].Kind {
	case yaml.MappingNode:
		return "prometheus", nil
	default:
		return "events", nil
	}
}

func checkRuleFiles(files []string) error {
	failed := false
	var eventFiles []string
	for _, f := range files {
		kind, err := ruleFileKind(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			failed = true
			continue
		}
		if kind == "events" {
			eventFiles = append(eventFiles, f)
			continue
		}
		p, errs := rules.LoadFile(f)
		if len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, e)
			}
			failed = true
			continue
		}
		n := 0
		for _, g := range p.Groups.Groups {
			n += len(g.Rules)
		}
		fmt.Printf("%s: OK: Prometheus rules, %d groups, %d rules\n", f, len(p.Groups.Groups), n)
	}
	if len(eventFiles) > 0 {
		rs, ds := eventrules.LoadFiles(eventFiles, eventrules.DefaultOptions())
		for _, d := range ds {
			fmt.Fprintln(os.Stderr, d)
		}
		if rs == nil {
			failed = true
		} else {
			fmt.Printf("%s: OK: event rules, %s\n", strings.Join(eventFiles, ", "), rs.Summary())
		}
	}
	if failed {
		return errors.New("rule files have errors")
	}
	return nil
}
