package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/config"
)

func registerConfig(app *kingpin.Application) {
	cmd := app.Command("config", "Validate or print configuration.")
	check := cmd.Command("check", "Validate config files: unknown keys, wrong types and bad values are reported with file and line.")
	files := check.Arg("file", "Config files to check.").Required().ExistingFiles()
	check.Action(func(*kingpin.ParseContext) error {
		failed := 0
		for _, f := range *files {
			cfg, err := config.Load(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				failed++
				continue
			}
			fmt.Printf("%s: OK (probes enabled: %s)\n", f, strings.Join(cfg.EnabledProbes(), ", "))
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d config files invalid", failed, len(*files))
		}
		return nil
	})
	cmd.Command("default", "Print the embedded default configuration.").Action(func(*kingpin.ParseContext) error {
		_, err := os.Stdout.Write(config.DefaultYAML())
		return err
	})
}
