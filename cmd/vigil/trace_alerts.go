package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/eventrules"
)

// registerTraceAlerts adds `vigil trace alerts`: the event-rule engine with
// only the probes its rules need, printing alerts as they fire.
func registerTraceAlerts(app *kingpin.Application) {
	trace := app.GetCommand("trace")
	if trace == nil {
		return
	}
	cmd := trace.Command("alerts", "Stream alerts of event and sequence rules live (loads only the probes the rules need; needs root).")
	configFile := cmd.Flag("config", "Config file (event_rules section and probe settings; defaults when omitted).").Short('c').String()
	ruleFiles := cmd.Flag("rules", "Event rule file or glob (repeatable; replaces event_rules.files).").Short('r').Strings()
	output := cmd.Flag("output", "Output format: table or json (one Alertmanager-shaped alert per line).").Short('o').Default("table").Enum("table", "json")
	alertmanagers := cmd.Flag("alertmanager.url", "Also deliver the alerts to this Alertmanager (repeatable).").Strings()
	cmd.Action(func(*kingpin.ParseContext) error {
		cfg, err := loadConfig(*configFile)
		if err != nil {
			return err
		}
		if len(*ruleFiles) > 0 {
			cfg.EventRules.Files = *ruleFiles
		}
		if len(cfg.EventRules.Files) == 0 {
			return fmt.Errorf("no event rule files: give --rules FILE (e.g. deploy/rules/events/*.yaml) or set event_rules.files")
		}
		cfg.Log.Level = "warn"
		log := newLogger(cfg.Log)
		er, err := setupEventRules(cfg, log)
		if err != nil {
			return err
		}
		a, err := agent.New(cfg, log, er.probes(cfg))
		if err != nil {
			return err
		}
		pr := newAlertPrinter(*output)
		var sink eventrules.Sink = pr
		var disp *alert.Dispatcher
		if len(*alertmanagers) > 0 {
			if disp, err = newDispatcher(*alertmanagers, a, log); err != nil {
				return err
			}
			sink = eventrules.Tee{disp, pr}
		}
		er.attach(a)
		er.setSink(sink)
		if err := a.Start(); err != nil {
			return err
		}
		defer a.Close()
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		errc := make(chan error, 1)
		go func() { errc <- a.Run(ctx) }()
		dctx, dcancel := context.WithCancel(context.Background())
		ddone := make(chan struct{})
		if disp != nil {
			go func() { _ = disp.Run(dctx); close(ddone) }()
		} else {
			close(ddone)
		}
		defer func() { dcancel(); <-ddone }()
		go er.run(ctx)
		var runErr error
		select {
		case <-ctx.Done():
		case runErr = <-errc:
			stop()
		}
		er.wait()
		pr.flush()
		if n := er.sub.Lost.Load(); n > 0 {
			fmt.Fprintf(os.Stderr, "vigil: %d events lost because the rule engine fell behind (raise event_rules.queue_size)\n", n)
		}
		if runErr != nil && ctx.Err() == nil {
			return runErr
		}
		return nil
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

func (p *alertPrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Flush()
}

var _ = time.Second
