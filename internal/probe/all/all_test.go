package all

import (
	"fmt"
	"testing"

	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/probe"
)

// Every linked probe ships its section of the default config next to it,
// and that section decodes to exactly the probe's DefaultConfig.
func TestEveryProbeShipsItsDefaults(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	specs := probe.All()
	if len(specs) < 5 {
		t.Fatalf("only %d probes linked", len(specs))
	}
	for _, s := range specs {
		if len(s.DefaultYAML) == 0 {
			t.Errorf("probe %s has no defaults.yaml section", s.Name)
			continue
		}
		got, want := cfg.ProbeConfigs[s.Name], s.NewConfig()
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) { // nil and empty lists alike
			t.Errorf("probes.%s from defaults.yaml = %+v\nNewConfig()                = %+v", s.Name, got, want)
		}
	}
}
