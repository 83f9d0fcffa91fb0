package open

import (
	"io"
	"log/slog"
	"testing"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// BenchmarkHandle is the user-space cost of one open record: decode, process
// lookup (cache hit), event construction and publication to a subscriber.
func BenchmarkHandle(b *testing.B) {
	bus := event.NewBus()
	sub := bus.Subscribe("bench", 1<<20, event.KindOpen)
	go func() {
		for range sub.C() {
		}
	}()
	procs := proc.NewCache(1024, nil)
	procs.Exec(proc.Process{PID: 4242, Comm: "cat", StartNS: 1})
	p := New(DefaultConfig())
	p.Clock = kernel.NewClock()
	p.Env = &probe.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Bus: bus, Procs: procs}
	p.registerMetrics(p.Env)
	rec := record(2, pathResolved, false, len("/home/u"), "/home/u/notes.txt", 3, 0o2000000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.handle(rec)
	}
}

func BenchmarkDecode(b *testing.B) {
	rec := record(2, pathResolved, false, len("/home/u"), "/home/u/notes.txt", 3, 0o2000000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeOpen(rec); err != nil {
			b.Fatal(err)
		}
	}
}
