package rulewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func write(t *testing.T, path, s string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// Same names, sizes and mtimes, different content: the hash differs. A
// file going missing changes it too, and is reported.
func TestSnapshotHashesContent(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.yaml")
	mtime := time.Unix(1700000000, 0)
	write(t, f, "rule: A", mtime)
	files, h1, err := Snapshot([]string{filepath.Join(dir, "*.yaml"), "builtin:x.yaml"})
	if err != nil || len(files) != 1 || files[0] != f {
		t.Fatalf("files %v, err %v", files, err)
	}
	write(t, f, "rule: B", mtime)
	_, h2, _ := Snapshot([]string{filepath.Join(dir, "*.yaml")})
	if h1 == h2 {
		t.Fatal("same hash for different content of the same size and mtime")
	}
	_, h3, err := Snapshot([]string{filepath.Join(dir, "missing.yaml")})
	if err == nil || h3 == h2 {
		t.Fatalf("missing file: hash %s, err %v", h3, err)
	}
}

// The watcher reloads once per change, not on every poll.
func TestWatcherReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.yaml")
	write(t, f, "one", time.Now())
	var n atomic.Int32
	w := &Watcher{Engine: EngineEvent, Patterns: []string{f}, Interval: 10 * time.Millisecond, Reload: func() error { n.Add(1); return nil }}
	w.Mark()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	time.Sleep(100 * time.Millisecond)
	if n.Load() != 0 {
		t.Fatalf("%d reloads without a change", n.Load())
	}
	write(t, f, "two", time.Now())
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n.Load() != 1 {
		t.Fatalf("%d reloads after one change, want 1", n.Load())
	}
}

// Both engines' metrics fit one registry: one family, told apart by engine.
func TestMetricsOfBothEnginesInOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, e := NewMetrics(EngineMetric), NewMetrics(EngineEvent)
	reg.MustRegister(m.Collectors()...)
	reg.MustRegister(e.Collectors()...)
	m.Success(time.Now())
	e.Failure()
	if n, err := testutil.GatherAndCount(reg, "vigil_rule_last_reload_successful"); err != nil || n != 2 {
		t.Fatalf("%d series, err %v", n, err)
	}
	if testutil.ToFloat64(m.OK) != 1 || testutil.ToFloat64(e.OK) != 0 || testutil.ToFloat64(e.Reloads.WithLabelValues("failure")) != 1 {
		t.Fatal("wrong values")
	}
}
