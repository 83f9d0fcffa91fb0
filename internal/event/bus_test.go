package event

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func exec(pid uint32) *Exec {
	e := &Exec{Header: Header{Kind: KindExec, Time: time.Now()}}
	e.PID = pid
	return e
}

func TestBusDeliversByKind(t *testing.T) {
	b := NewBus()
	execs := b.Subscribe("execs", 4, KindExec)
	all := b.Subscribe("all", 4)
	if !b.Wants(KindExec) || !b.Wants(KindOpen) {
		t.Fatal("Wants must be true for subscribed kinds")
	}
	b.Publish(exec(1))
	b.Publish(&Exit{Header: Header{Kind: KindExit}})
	if got := len(execs.C()); got != 1 {
		t.Fatalf("exec subscriber got %d events, want 1", got)
	}
	if got := len(all.C()); got != 2 {
		t.Fatalf("all-kinds subscriber got %d events, want 2", got)
	}
	if e := (<-execs.C()).(*Exec); e.PID != 1 {
		t.Fatalf("pid %d, want 1", e.PID)
	}
}

func TestBusCountsDropsPerSubscriber(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe("slow", 2, KindExec)
	for i := 0; i < 5; i++ {
		b.Publish(exec(uint32(i)))
	}
	if got := slow.Lost.Load(); got != 3 {
		t.Fatalf("lost %d, want 3", got)
	}
	if got := testutil.ToFloat64(b.dropped.WithLabelValues("slow")); got != 3 {
		t.Fatalf("vigil_event_queue_dropped_total = %v, want 3", got)
	}
	// The queue kept the oldest events: publishing never blocks or reorders.
	if e := (<-slow.C()).(*Exec); e.PID != 0 {
		t.Fatalf("first queued pid %d, want 0", e.PID)
	}
}

func TestBusUnsubscribe(t *testing.T) {
	b := NewBus()
	s := b.Subscribe("x", 1, KindFork)
	b.Unsubscribe(s)
	if b.Wants(KindFork) {
		t.Fatal("no subscriber left, Wants must be false")
	}
	if _, ok := <-s.C(); ok {
		t.Fatal("channel must be closed after Unsubscribe")
	}
	b.Publish(&Fork{Header: Header{Kind: KindFork}}) // must not panic on the closed channel
}

func BenchmarkPublishOneSubscriber(b *testing.B) {
	bus := NewBus()
	s := bus.Subscribe("bench", 1024, KindExec)
	e := exec(1)
	go func() {
		for range s.C() {
		}
	}()
	for b.Loop() {
		bus.Publish(e)
	}
}
