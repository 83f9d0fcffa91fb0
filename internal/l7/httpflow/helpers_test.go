package httpflow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/probe/l7"
	"github.com/vigilproject/vigil/internal/testutil"
)

// run is an agent with the l7 probe and the HTTP deriver, its RED metrics
// recorded, collecting every http event.
type run struct {
	t   *testing.T
	a   *agent.Agent
	sub *event.Subscription

	mu  sync.Mutex
	evs []*httpflow.Exchange
}

// startAgent runs the l7 probe (pids: only these processes; none: all but
// this one, unless self) with the deriver and its metrics.
func startAgent(t *testing.T, self bool, pids ...int) *run {
	t.Helper()
	testutil.RequireBPF(t)
	// Room for bursts (wrk) on a loaded machine, or a -race build.
	yaml := "probes:\n  l7:\n    enabled: true\n    ringbuf_size: 16777216\nl7:\n  http:\n    idle_timeout: 2s\n    queue_size: 65536\n"
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.ProbeConfigs[l7.Name].(*l7.Config)
	pc.ExcludeSelf = !self
	for _, p := range pids {
		pc.PIDs = append(pc.PIDs, uint32(p))
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), []string{l7.Name})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, a: a}
	r.sub = a.Bus.Subscribe("test", 1<<17, httpflow.KindHTTP)
	testutil.SkipIfNotPermitted(t, a.Start())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	go func() { defer wg.Done(); a.HTTP.RunMetrics(ctx, a.Bus) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-r.sub.C():
				r.mu.Lock()
				r.evs = append(r.evs, ev.(*httpflow.Exchange))
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); _ = a.Close() })
	if !testutil.WaitFor(5*time.Second, func() bool { return a.Bus.Wants(l7.KindConnData) }) {
		t.Fatal("the http deriver did not subscribe to conn_data")
	}
	return r
}

// events returns the http events of these pids so far.
func (r *run) events(pids ...int) []*httpflow.Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*httpflow.Exchange
	for _, e := range r.evs {
		if len(pids) == 0 || slices.Contains(pids, int(e.PID)) {
			out = append(out, e)
		}
	}
	return out
}

// waitEvents waits until n events of pids arrived, then a little longer so
// that an extra one would show.
func (r *run) waitEvents(n int, pids ...int) []*httpflow.Exchange {
	r.t.Helper()
	if !testutil.WaitFor(60*time.Second, func() bool { return len(r.events(pids...)) >= n }) {
		r.noLoss()
		r.t.Fatalf("%d http events of pids %v, want %d:\n%s", len(r.events(pids...)), pids, n, dump(r.events(pids...)))
	}
	time.Sleep(300 * time.Millisecond)
	evs := r.events(pids...)
	if len(evs) != n {
		r.t.Fatalf("%d http events of pids %v, want exactly %d:\n%s", len(evs), pids, n, dump(evs))
	}
	return evs
}

// metrics gathers the agent's registry.
func (r *run) metrics() testutil.Metrics {
	r.t.Helper()
	fams, err := r.a.Registry.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	m := testutil.Metrics{}
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// noLoss fails when any queue or ring on the way lost events.
func (r *run) noLoss() {
	r.t.Helper()
	m := r.metrics()
	if v := m.Value("vigil_event_queue_dropped_total", nil); v != 0 {
		r.t.Fatalf("event queues dropped %v events: %v", v, m.Series("vigil_event_queue_dropped_total"))
	}
	if v := m.Value("vigil_probe_events_dropped_total", map[string]string{"probe": l7.Name}); v != 0 {
		r.t.Fatalf("the l7 ring dropped %v records", v)
	}
}

func dump(evs []*httpflow.Exchange) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  pid %d %s %s %s %d %dB/%dB %.3fms fd %d gen %d trunc %v\n", e.PID, e.Side, e.Method, e.Path, e.Status,
			e.RequestBytes, e.ResponseBytes, float64(e.DurationNS)/1e6, e.Conn.FD, e.Conn.Generation, e.Truncated)
	}
	return b.String()
}

// bySide splits events into server and client side.
func bySide(evs []*httpflow.Exchange) (server, client []*httpflow.Exchange) {
	for _, e := range evs {
		if e.Side == "server" {
			server = append(server, e)
		} else {
			client = append(client, e)
		}
	}
	return server, client
}

// listenAddr waits until something accepts on addr.
func listenAddr(t *testing.T, addr string) {
	t.Helper()
	if !testutil.WaitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing listens on %s", addr)
	}
}

// startProcess runs cmd until the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

func lookPath(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skipf("skipped: %s not installed", names[0])
	return ""
}
