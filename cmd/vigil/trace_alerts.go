package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/alert"
)

// registerTraceAlerts adds `vigil trace alerts`: the event-rule engine with
// only the probes its rules need, printing alerts as they fire.
func registerTraceAlerts(app *kingpin.Application) {
	trace := app.GetCommand("trace")
	if trace == nil {
		return
	}
	cmd := trace.Command("alerts", "Stream alerts of event and sequence rules live: the embedded default pack, or --rules (loads only the probes the rules need; needs root).")
	configFile := cmd.Flag("config", "Config file (event_rules section and probe settings; defaults when omitted).").Short('c').String()
	ruleFiles := cmd.Flag("rules", "Event rule file or glob (repeatable; replaces event_rules.files and the embedded pack).").Short('r').Strings()
	output := cmd.Flag("output", "Output format: table or json (one Alertmanager-shaped alert per line).").Short('o').Default("table").Enum("table", "json")
	alertmanagers := cmd.Flag("alertmanager.url", "Also deliver the alerts to this Alertmanager (repeatable).").Strings()
	var noDefaults bool
	noDefaultRulesFlag(cmd, &noDefaults)
	cmd.Action(func(*kingpin.ParseContext) error {
		cfg, err := loadConfig(*configFile)
		if err != nil {
			return err
		}
		if len(*ruleFiles) > 0 {
			cfg.EventRules.Files = *ruleFiles
			noDefaults = true
		}
		if noDefaults {
			noDefaultRules(cfg)
		}
		if len(cfg.EventRules.Patterns()) == 0 {
			return fmt.Errorf("no event rules: the embedded pack is off (--no-default-rules or event_rules.builtin: false); give --rules FILE or set event_rules.files")
		}
		cfg.Log.Level = "warn"
		pr := newAlertPrinter(*output)
		a, err := agent.Open(cfg, newLogger(cfg.Log), agent.Options{
			Probes: []string{}, EventRules: true, AlertSink: pr, Alertmanagers: *alertmanagers})
		if err != nil {
			return err
		}
		lost := newLossReporter(a, a.EventRulesSubscription(), "event_rules.queue_size or the probes' ringbuf_size")
		return a.Main(func(ctx context.Context) error {
			t := time.NewTicker(lossEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					for _, r := range lost.check(io.Discard) {
						pr.lost(r)
					}
					pr.flush()
					lost.summary(os.Stderr)
					return nil
				case <-t.C:
					for _, r := range lost.check(os.Stderr) {
						pr.lost(r)
					}
				}
			}
		})
	})
}

// alertPrinter prints alerts as a table or JSON lines.
type alertPrinter struct {
	mu  sync.Mutex
	out *bufio.Writer
	tw  *tabwriter.Writer
	enc *json.Encoder
}

func newAlertPrinter(format string) *alertPrinter {
	p := &alertPrinter{out: bufio.NewWriter(os.Stdout)}
	if format == "json" {
		p.enc = json.NewEncoder(p.out)
	} else {
		p.tw = tabwriter.NewWriter(p.out, 0, 8, 1, ' ', 0)
		fmt.Fprintln(p.tw, "TIME\tSEVERITY\tRULE\tCONTAINER\tSUMMARY")
		p.tw.Flush()
		p.out.Flush()
	}
	return p
}

// Send implements eventrules.Sink.
func (p *alertPrinter) Send(_ string, alerts []alert.Alert) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range alerts {
		if p.enc != nil {
			_ = p.enc.Encode(a)
			continue
		}
		ctr := a.Labels["container"]
		if ctr == "" {
			ctr = "host"
		}
		summary := strings.ReplaceAll(a.Annotations["summary"], "\t", " ")
		if n := a.Annotations["suppressed_repeats"]; n != "" {
			summary += " [" + n + " more within the suppression window, last " + a.Annotations["last_seen"] + "]"
		}
		fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\n", a.StartsAt.Local().Format(timeLayout), a.Labels["severity"], a.Labels["alertname"], ctr, summary)
		p.tw.Flush()
	}
	p.out.Flush()
}

// lost prints a loss record in JSON mode (the table view has the warning
// on stderr).
func (p *alertPrinter) lost(r lostRecord) {
	if p.enc == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.enc.Encode(r)
	p.out.Flush()
}

func (p *alertPrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Flush()
}
