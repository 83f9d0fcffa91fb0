package open

import (
	"fmt"
	"testing"

	"github.com/vigilproject/vigil/internal/config"
)

// The embedded default.yaml section and DefaultConfig agree.
func TestDefaultYAMLMatches(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := cfg.ProbeConfigs[Name].(*Config)
	if !ok {
		t.Fatalf("no %s section decoded", Name)
	}
	if fmt.Sprint(*got) != fmt.Sprint(*DefaultConfig()) {
		t.Errorf("default.yaml probes.%s = %+v\nDefaultConfig()     = %+v", Name, *got, *DefaultConfig())
	}
}
