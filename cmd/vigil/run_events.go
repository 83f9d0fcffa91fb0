package main

import (
	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
)

// ruleFlags are the `vigil run` flags for rules and their delivery.
type ruleFlags struct {
	files          []string
	alertmanagers  []string
	noDefaultRules bool
}

func registerRuleFlags(cmd *kingpin.CmdClause) *ruleFlags {
	f := &ruleFlags{}
	cmd.Flag("event-rules.file", "Event rule file or glob (repeatable; added to event_rules.files).").StringsVar(&f.files)
	cmd.Flag("alertmanager.url", "Alertmanager to send alerts to through API v2 (repeatable; added to alerting.alertmanagers), e.g. http://127.0.0.1:9093.").StringsVar(&f.alertmanagers)
	noDefaultRulesFlag(cmd, &f.noDefaultRules)
	return f
}

// noDefaultRulesFlag declares --no-default-rules.
func noDefaultRulesFlag(cmd *kingpin.CmdClause, v *bool) {
	cmd.Flag("no-default-rules", "Do not load the embedded event and metric rule packs (event_rules.builtin and rules.builtin: false); rule files still load.").BoolVar(v)
}

// noDefaultRules switches the embedded packs off.
func noDefaultRules(cfg *config.Config) {
	off := false
	cfg.EventRules.Builtin = &off
	cfg.Rules.Builtin = &off
}

func (f *ruleFlags) apply(cfg *config.Config) {
	cfg.EventRules.Files = append(cfg.EventRules.Files, f.files...)
	for _, u := range f.alertmanagers {
		cfg.Alerting.Alertmanagers = append(cfg.Alerting.Alertmanagers, alert.Endpoint{URL: u})
	}
	if f.noDefaultRules {
		noDefaultRules(cfg)
	}
}
