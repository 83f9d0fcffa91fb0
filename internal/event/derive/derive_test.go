package derive

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilproject/vigil/internal/event"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func execEv(pid uint32, startNS uint64, at time.Duration, file string, ret int32, args ...string) *event.Exec {
	return &event.Exec{Header: event.Header{Kind: event.KindExec, Time: t0.Add(at),
		Process: event.Process{PID: pid, PPID: 1, Comm: "sh", Exe: file, StartNS: startNS}}, Filename: file, Args: args, Ret: ret}
}

func exitEv(pid uint32, startNS uint64, at time.Duration, code int) *event.Exit {
	return &event.Exit{Header: event.Header{Kind: event.KindExit, Time: t0.Add(at),
		Process: event.Process{PID: pid, PPID: 1, Comm: "true", StartNS: startNS}}, ExitCode: code, LifetimeSeconds: at.Seconds()}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// The process_lifetime deriver on a real bus: it runs only while its kind is
// consumed, joins exec and exit by process identity, and counts what it
// consumed and produced.
func TestLifetimeOnBus(t *testing.T) {
	bus := event.NewBus()
	r := newRunner(bus, slog.New(slog.NewTextHandler(io.Discard, nil)), []Spec{lifetimeSpec()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	running := r.running.WithLabelValues(LifetimeName)
	time.Sleep(20 * time.Millisecond)
	if bus.Wants(event.KindExec) || testutil.ToFloat64(running) != 0 {
		t.Fatal("deriver subscribed to exec although nobody consumes process_lifetime")
	}
	out := bus.Subscribe("test", 64, event.KindProcessLifetime)
	waitUntil(t, "the deriver to follow demand", func() bool { return bus.Wants(event.KindExec) && bus.Wants(event.KindExit) })

	const sec = time.Second
	evs := []event.Event{
		execEv(100, 5e9, 0, "/bin/sh", 0, "sh", "-c", "exec /usr/bin/true x"),
		execEv(100, 5e9, 10*time.Millisecond, "/usr/bin/true", 0, "/usr/bin/true", "x"), // same process, second exec
		execEv(100, 5e9, 20*time.Millisecond, "/nope", -2, "/nope"),                     // failed: the old program runs on
		exitEv(100, 5e9, 2*sec, 3),
		exitEv(101, 6e9, 2*sec, 0),                         // forked, never exec'd: no event
		execEv(102, 7e9, 0, "/bin/sleep", 0, "sleep", "1"), // pid reused by another process before its exit arrives
		exitEv(102, 9e9, sec, 0),
	}
	for _, ev := range evs {
		bus.Publish(ev)
	}
	var got *event.ProcessLifetime
	select {
	case ev := <-out.C():
		got = ev.(*event.ProcessLifetime)
	case <-time.After(5 * time.Second):
		t.Fatal("no process_lifetime event")
	}
	if got.Kind != event.KindProcessLifetime || got.PID != 100 || got.Comm != "true" || got.Exe != "/usr/bin/true" ||
		got.Filename != "/usr/bin/true" || !slices.Equal(got.Args, []string{"/usr/bin/true", "x"}) || got.Execs != 2 ||
		got.ExitCode != 3 || got.LifetimeSeconds != 2 || got.RunSeconds != 1.99 || !got.ExecTime.Equal(t0.Add(10*time.Millisecond)) {
		t.Errorf("process_lifetime = %+v", got)
	}
	waitUntil(t, "all inputs consumed", func() bool {
		return testutil.ToFloat64(r.consumed.WithLabelValues(LifetimeName)) == float64(len(evs))
	})
	select {
	case ev := <-out.C():
		t.Fatalf("unexpected second event %+v", ev)
	default:
	}
	if n := testutil.ToFloat64(r.produced.WithLabelValues(LifetimeName, string(event.KindProcessLifetime))); n != 1 {
		t.Errorf("produced = %v, want 1", n)
	}
	if testutil.ToFloat64(running) != 1 {
		t.Error("vigil_derive_running is not 1 while consumed")
	}

	bus.Unsubscribe(out)
	waitUntil(t, "the deriver to stop without consumers", func() bool { return !bus.Wants(event.KindExec) && testutil.ToFloat64(running) == 0 })
}

// The pending table is bounded: the oldest exec is forgotten and counted.
func TestLifetimePendingBound(t *testing.T) {
	var emitted []event.Event
	drops := map[string]int{}
	l := newLifetime(Env{Emit: func(ev event.Event) { emitted = append(emitted, ev) }, Drop: func(r string) { drops[r]++ }}, 2)
	for pid := uint32(1); pid <= 3; pid++ {
		l.Consume(execEv(pid, uint64(pid)*1e9, 0, "/bin/x", 0, "x"))
	}
	if drops["pending_full"] != 1 || len(l.pending) != 2 || l.order.Len() != 2 {
		t.Fatalf("drops %v, pending %d/%d", drops, len(l.pending), l.order.Len())
	}
	for pid := uint32(1); pid <= 3; pid++ {
		l.Consume(exitEv(pid, uint64(pid)*1e9, time.Second, 0))
	}
	if len(emitted) != 2 || emitted[0].EventHeader().PID != 2 || emitted[1].EventHeader().PID != 3 {
		t.Fatalf("emitted %d events (want pids 2 and 3)", len(emitted))
	}
	if len(l.pending) != 0 || l.order.Len() != 0 {
		t.Fatalf("state left after exits: %d/%d", len(l.pending), l.order.Len())
	}
}

func TestRegisterRejectsUndeclaredKinds(t *testing.T) {
	s := lifetimeSpec()
	s.Name = "other"
	s.Consumes = append(s.Consumes, event.KindProcessLifetime)
	if err := s.validate(); err == nil {
		t.Error("a deriver consuming its own kind was accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering process_lifetime twice did not panic")
		}
	}()
	Register(lifetimeSpec())
}

func lifetimeSpec() Spec {
	for _, s := range All() {
		if s.Name == LifetimeName {
			return s
		}
	}
	panic("process_lifetime deriver not registered")
}
