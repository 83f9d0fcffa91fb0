package config

import (
	"strings"
	"testing"
	"time"
)

func TestEventRulesSection(t *testing.T) {
	cfg, err := Parse([]byte("event_rules:\n  files: [/etc/vigil/events/*.yaml]\n  reorder_window: 100ms\n"), "e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EventRules.ReorderWindow != 100*time.Millisecond || cfg.EventRules.Files[0] != "/etc/vigil/events/*.yaml" {
		t.Fatalf("event_rules = %+v", cfg.EventRules)
	}
	if cfg.EventRules.MaxSequenceKeys != 100000 || cfg.EventRules.QueueSize != 65536 {
		t.Fatalf("defaults not kept: %+v", cfg.EventRules)
	}
	_, err = Parse([]byte("log:\n  level: info\nevent_rules:\n  reorder_window: 20s\n"), "bad.yaml")
	if err == nil || !strings.Contains(err.Error(), "bad.yaml: line 3: event_rules: reorder_window: 20s must be between 0 and 10s") {
		t.Fatalf("error = %v", err)
	}
	_, err = Parse([]byte("event_rules:\n  reorder_windw: 1s\n"), "bad.yaml")
	if err == nil || !strings.Contains(err.Error(), `line 2: unknown key "reorder_windw"`) {
		t.Fatalf("error = %v", err)
	}
}

// The embedded event pack is on by default; files add to it; builtin: false
// leaves only the files.
func TestEventRulesBuiltinPack(t *testing.T) {
	cfg, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.EventRules.Patterns()
	if !cfg.EventRules.BuiltinEnabled() || len(p) == 0 || !strings.HasPrefix(p[0], "builtin:") {
		t.Fatalf("default patterns %v, want the embedded pack", p)
	}
	cfg, err = Parse([]byte("event_rules:\n  files: [/x/*.yaml]\n"), "e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p2 := cfg.EventRules.Patterns(); len(p2) != len(p)+1 || p2[len(p2)-1] != "/x/*.yaml" {
		t.Fatalf("patterns %v, want the pack then /x/*.yaml", p2)
	}
	cfg, err = Parse([]byte("event_rules:\n  builtin: false\n  files: [/x/*.yaml]\n"), "e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p3 := cfg.EventRules.Patterns(); len(p3) != 1 || p3[0] != "/x/*.yaml" {
		t.Fatalf("patterns %v with builtin: false, want only /x/*.yaml", p3)
	}
}
