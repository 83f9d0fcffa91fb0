// Command vigil is an eBPF observability and alerting agent for Linux.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"

	"github.com/vigilproject/vigil/internal/config"
	_ "github.com/vigilproject/vigil/internal/probe/all"
)

func main() {
	app := kingpin.New("vigil", `eBPF observability and alerting agent for Linux.

vigil loads CO-RE eBPF programs on tracepoints, turns what the kernel reports
into Prometheus metrics and live event streams, and keeps its own cost visible.

  sudo vigil run                  agent with embedded defaults on http://127.0.0.1:19400/metrics
  sudo vigil trace exec           execs as they happen (like execsnoop); also open, tcp, fork, ...
  sudo vigil trace alerts         alerts of the embedded event-rule pack as they fire
  sudo vigil top sched            run-queue latency and off-CPU time; also top tcp, top syscalls
  sudo vigil features             what this kernel allows and which hook each program uses
  vigil config check FILE         validate a config file
  vigil rules check FILE          validate metric and event rule files (--expand: show anomaly: as PromQL)
  vigil docs events               every event kind and field, as rules and traces see them`)
	app.HelpFlag.Short('h')
	app.Version(version.Print("vigil"))
	app.ErrorWriter(os.Stderr)

	registerRun(app)
	registerTrace(app)
	registerTraceAlerts(app)
	registerTop(app)
	registerFeatures(app)
	registerConfig(app)
	registerRules(app)
	registerDocs(app)
	app.Command("version", "Print version and build information.").Action(func(*kingpin.ParseContext) error {
		fmt.Println(version.Print("vigil"))
		return nil
	})

	if _, err := app.Parse(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v\n", err)
		os.Exit(1)
	}
}

// loadConfig reads path, or the embedded defaults when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default()
	}
	return config.Load(path)
}

// newLogger builds the structured logger from the config's log section.
func newLogger(cfg config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
