package rules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/alert"
)

// testAgent is an engine plus dispatcher over a real registry whose metrics
// the test drives, i.e. what `vigil run` wires together.
type testAgent struct {
	t      *testing.T
	reg    *prometheus.Registry
	execs  *prometheus.CounterVec
	eng    *Engine
	disp   *alert.Dispatcher
	cancel context.CancelFunc
	done   chan struct{}
}

type agentOpts struct {
	dir       string // data dir (TSDB + state); reused across restarts
	files     []string
	notifiers []alert.Notifier
	cfg       func(*Config)
}

func startAgent(t *testing.T, o agentOpts) *testAgent {
	t.Helper()
	a := newAgent(t, o)
	a.start()
	return a
}

func newAgent(t *testing.T, o agentOpts) *testAgent {
	t.Helper()
	reg := prometheus.NewRegistry()
	execs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_test_exec_total", Help: "Execs seen (driven by the test).",
	}, []string{"comm"})
	reg.MustRegister(execs)
	execs.WithLabelValues("sh") // exists before activity starts, like real probe metrics
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	disp, err := alert.NewDispatcher(alert.Options{
		Notifiers: o.notifiers, StateFile: filepath.Join(o.dir, "alerts.json"),
		ExternalLabels: map[string]string{"host": "testhost"},
		MinBackoff:     100 * time.Millisecond, MaxBackoff: time.Second, Timeout: 2 * time.Second,
		ResendInterval: 2 * time.Second, Registerer: reg, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Files:              o.files,
		EvaluationInterval: alert.Duration(time.Second),
		FeedInterval:       alert.Duration(time.Second),
		DataDir:            filepath.Join(o.dir, "tsdb"),
		WatchInterval:      alert.Duration(200 * time.Millisecond),
		ResendDelay:        alert.Duration(2 * time.Second),
		Builtin:            new(bool), // tests count groups; TestBuiltinLoads covers it
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	eng, err := New(Options{Config: cfg, Gatherer: reg, Registerer: reg, Dispatcher: disp,
		ExternalLabels: map[string]string{"host": "testhost"}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return &testAgent{t: t, reg: reg, execs: execs, eng: eng, disp: disp}
}

func (a *testAgent) start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.disp.Run(ctx) }() //nolint:errcheck
	go func() {
		defer wg.Done()
		if err := a.eng.Run(ctx); err != nil {
			a.t.Errorf("engine: %v", err)
		}
	}()
	go func() { wg.Wait(); close(a.done) }()
	a.t.Cleanup(a.stop)
}

// stop shuts the agent down as SIGTERM would and waits.
func (a *testAgent) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
}

// drive increments the exec counter at perSecond until the returned func is
// called.
func (a *testAgent) drive(perSecond int) (stop func()) {
	return driveCounter(a.execs.WithLabelValues("sh"), perSecond)
}

func driveCounter(c prometheus.Counter, perSecond int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.Add(float64(perSecond) / 10)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// ruleState returns the state and activeAt of the first alert of rule name.
func (a *testAgent) ruleState(name string) (state string, activeAt time.Time) {
	for _, r := range a.eng.Manager().AlertingRules() {
		if r.Name() != name {
			continue
		}
		for _, al := range r.ActiveAlerts() {
			return al.State.String(), al.ActiveAt
		}
	}
	return "inactive", time.Time{}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// sink is a Notifier collecting alerts in memory, for tests where the
// receiver is not the subject.
type sink struct {
	mu  sync.Mutex
	got []alert.Alert
}

func (s *sink) Name() string { return "sink" }

func (s *sink) Notify(_ context.Context, as []alert.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, as...)
	return nil
}

func (s *sink) find(name string, resolved bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.got {
		if a.Name() == name && a.Resolved(time.Now()) == resolved {
			return true
		}
	}
	return false
}
