package main

import (
	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
)

func registerRun(app *kingpin.Application) {
	cmd := app.Command("run", "Run the agent: attach the enabled probes, evaluate metric and event rules, deliver alerts and serve /metrics and /healthz.")
	configFile := cmd.Flag("config", "YAML config file, layered over the embedded defaults (see `vigil config default`).").Short('c').String()
	listen := cmd.Flag("web.listen-address", "Address for /metrics and the API (overrides web.listen_address).").String()
	webConfig := cmd.Flag("web.config.file", "Prometheus exporter-toolkit web config for TLS and basic auth (overrides web.config_file).").String()
	logLevel := cmd.Flag("log.level", "Log level: debug, info, warn, error (overrides log.level).").Enum("debug", "info", "warn", "error")
	logFormat := cmd.Flag("log.format", "Log format: logfmt or json (overrides log.format).").Enum("logfmt", "json")
	pprof := cmd.Flag("debug.pprof", "Serve Go runtime profiles under /debug/pprof/ on the web listener (off by default).").Bool()
	rf := registerRuleFlags(cmd)
	cmd.Action(func(*kingpin.ParseContext) error {
		cfg, err := loadConfig(*configFile)
		if err != nil {
			return err
		}
		if *listen != "" {
			cfg.Web.ListenAddress = *listen
		}
		if *webConfig != "" {
			cfg.Web.ConfigFile = *webConfig
		}
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
		if *logFormat != "" {
			cfg.Log.Format = *logFormat
		}
		rf.apply(cfg)
		a, err := agent.Open(cfg, newLogger(cfg.Log), agent.Options{EventRules: true, Alerting: true, Listen: true, Pprof: *pprof})
		if err != nil {
			return err
		}
		return a.Main(nil)
	})
}
