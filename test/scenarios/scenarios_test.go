package scenarios

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/eventrules"
	"github.com/vigilproject/vigil/internal/probe"
	_ "github.com/vigilproject/vigil/internal/probe/all"
	openprobe "github.com/vigilproject/vigil/internal/probe/open"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// DefaultPack lists the default rule files.
func defaultPack(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join(repoRoot(), "deploy", "rules", "events", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("default rule pack not found: %v", err)
	}
	return files
}

type recorder struct {
	mu     sync.Mutex
	alerts []alert.Alert
}

func (r *recorder) Send(_ string, as []alert.Alert) {
	r.mu.Lock()
	r.alerts = append(r.alerts, as...)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.alerts)
}

// producible reports the event kinds some probe in this build produces.
func producible(k string) bool {
	for _, s := range probe.All() {
		if slices.Contains(s.Events, event.Kind(k)) {
			return true
		}
	}
	return false
}

// missingKindReason names the branch that brings a missing event kind.
var missingKindReason = map[string]string{
	"open":    "no probe in this build produces open events (the file-open probe is not merged yet)",
	"connect": "no probe in this build produces connect events (the TCP probe is not merged yet)",
}

func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel scenario test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("scenarios load BPF programs: run as root")
	}
	files, err := filepath.Glob(filepath.Join(repoRoot(), "test", "scenarios", "cases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatal("no scenario files")
	}
	var scenarios []*Scenario
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		scenarios = append(scenarios, s)
	}

	opts := eventrules.DefaultOptions()
	opts.Host = "scenario-host"
	opts.NoSuppression = true
	rs, ds := eventrules.LoadFiles(defaultPack(t), opts)
	if rs == nil {
		t.Fatalf("default pack: %v", ds)
	}
	rec := &recorder{}
	eng := eventrules.NewEngine(nil, rec)
	eng.Install(rs)

	kinds := rs.Kinds()
	kinds = append(kinds, event.KindExit)
	var probes []string
	for _, s := range probe.All() {
		for _, k := range kinds {
			if slices.Contains(s.Events, k) && !slices.Contains(probes, s.Name) {
				probes = append(probes, s.Name)
			}
		}
	}
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	// Push the rules' path prefixes into the open probe's kernel filter,
	// as `vigil run` does: the scenarios then prove the filter keeps what
	// the rules need.
	if oc, ok := cfg.ProbeConfigs["open"].(*openprobe.Config); ok {
		if prefixes, pids, ok := rs.KernelFilter(event.KindOpen); ok {
			oc.PathPrefixes, oc.PIDs = prefixes, pids
			t.Logf("open kernel filter: %v", prefixes)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := agent.New(cfg, log, probes)
	if err != nil {
		t.Fatal(err)
	}
	eng.SetProcs(a.Procs)
	sub := a.Bus.Subscribe("scenarios", 1<<16, kinds...)
	if err := a.Start(); err != nil {
		if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "operation not permitted") {
			t.Skipf("loading BPF programs not permitted here: %v", err)
		}
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	go func() { _ = eng.Run(ctx, sub.C()) }()

	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) {
			for _, k := range s.Needs {
				if !producible(k) {
					reason := missingKindReason[k]
					if reason == "" {
						reason = "no probe in this build produces " + k + " events"
					}
					t.Skipf("needs event kind %q: %s", k, reason)
				}
			}
			for _, p := range s.Requires {
				if _, err := os.Stat(p); err != nil {
					t.Skipf("needs %s: %v", p, err)
				}
			}
			r, err := NewRunner(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Do(s); err != nil {
				t.Fatal(err)
			}
			check(t, s, r, rec)
		})
	}
	if n := sub.Lost.Load(); n > 0 {
		t.Errorf("the rule engine lost %d events (queue full)", n)
	}
}

// check waits for the expected alerts, then makes sure the absent ones did
// not come (waiting at least the reorder window and one tick more).
func check(t *testing.T, s *Scenario, r *Runner, rec *recorder) {
	t.Helper()
	deadline := time.Now().Add(s.WaitFor())
	missing := s.Expect
	for {
		var still []Match
		alerts := rec.snapshot()
		for _, m := range missing {
			if !slices.ContainsFunc(alerts, func(a alert.Alert) bool { return r.Matches(m, a) }) {
				still = append(still, m)
			}
		}
		missing = still
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range missing {
		t.Errorf("expected alert did not arrive within %v: %+v (pids %v)", s.WaitFor(), m, r.PIDs)
	}
	if len(s.Absent) > 0 {
		time.Sleep(500 * time.Millisecond)
		for _, m := range s.Absent {
			for _, a := range rec.snapshot() {
				if r.Matches(m, a) {
					t.Errorf("unexpected alert for %+v: %v %v", m, a.Labels, a.Annotations["summary"])
				}
			}
		}
	}
	if t.Failed() {
		for _, a := range rec.snapshot() {
			if a.StartsAt.After(r.Started.Add(-time.Second)) {
				t.Logf("alert seen: %s pid=%s: %s", a.Labels["alertname"], a.Annotations["pid"], a.Annotations["summary"])
			}
		}
	}
}
