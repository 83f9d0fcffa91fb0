package eventrules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReloadKeepsOldRulesOnFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("- rule: A\n  event: exec\n  condition: evt.filename == \"/a\"\n")
	rec := &recorder{}
	e := NewEngine(nil, rec)
	opts := DefaultOptions()
	opts.ReorderWindow = 0
	l := &Loader{Patterns: []string{filepath.Join(dir, "*.yaml")}, Opts: opts, Engine: e}
	if err := l.Load(); err != nil {
		t.Fatal(err)
	}
	// A broken file: the error names file:line, the old rule stays.
	write("- rule: B\n  event: exec\n  condition: evt.filename == 1\n")
	err := l.Load()
	if err == nil || !strings.Contains(err.Error(), path+":3:") {
		t.Fatalf("reload error = %v, want one naming %s:3", err, path)
	}
	e.Handle(execEv(1, 0, "/a"))
	if len(rec.named("A")) != 1 {
		t.Fatal("the previous rule is not in force after a failed reload")
	}
	if testutil.ToFloat64(e.m.reloads.WithLabelValues("failure")) != 1 || testutil.ToFloat64(e.m.reloadOK) != 0 {
		t.Fatal("failed reload not visible in metrics")
	}
	// Fixing the file is picked up by the watcher.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Watch(ctx, 20*time.Millisecond, nil)
	time.Sleep(50 * time.Millisecond) // let mtime differ on coarse clocks
	write("- rule: B\n  event: exec\n  condition: evt.filename == \"/b\"\n")
	deadline := time.Now().Add(5 * time.Second)
	for l.LastError() != nil || e.Ruleset().Rules[0].Name != "B" {
		if time.Now().After(deadline) {
			t.Fatalf("watcher did not load the fixed file: %v", l.LastError())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.Handle(execEv(2, 0, "/b"))
	if len(rec.named("B")) != 1 || testutil.ToFloat64(e.m.reloadOK) != 1 {
		t.Fatal("new rule not in force after the fix")
	}
}
