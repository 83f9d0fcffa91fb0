package process

import (
	"io"
	"log/slog"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// User-space cost per ring-buffer record: decoding alone, and the whole
// handler (decode, process cache, capped metric labels, event published to
// a subscriber that drains it), as the agent runs it. bench/process/run.sh
// runs these next to the kernel-side measurements.

func BenchmarkDecodeExec(b *testing.B) {
	rec := buildExec(b, kindExec, "/usr/bin/true", "/usr/bin/true\x00--flag\x00some/argument\x00", false)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeExec(rec, 64); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeExit(b *testing.B) {
	rec := buildExit(b, 4242, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeExit(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// benchProbe is a probe wired like the agent wires it, minus the kernel.
func benchProbe(b *testing.B, subscribe bool) (*Probe, func()) {
	bus := event.NewBus()
	p := New(DefaultConfig())
	p.Env = &probe.Env{
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
		Bus:        bus,
		Procs:      proc.NewCache(32768, proc.NewCgroups("/sys/fs/cgroup", 4096)),
		LabelLimit: 100,
	}
	p.Clock = kernel.NewClock()
	p.registerMetrics(p.Env)
	stop := func() {}
	if subscribe {
		sub := bus.Subscribe("bench", 1<<16)
		done := make(chan struct{})
		go func() {
			for range sub.C() {
			}
			close(done)
		}()
		stop = func() { bus.Unsubscribe(sub); <-done }
	}
	return p, stop
}

// One exec + exit pair per iteration, of distinct pids (a fresh process
// each time, as under an exec storm), so the cache inserts and retires.
func benchHandle(b *testing.B, subscribe bool) {
	p, stop := benchProbe(b, subscribe)
	defer stop()
	execRec := buildExec(b, kindExec, "/usr/bin/true", "/usr/bin/true\x00--flag\x00some/argument\x00", false)
	exitRec := buildExit(b, 0, 0)
	b.ReportAllocs()
	pid := uint32(1 << 22)
	for b.Loop() {
		pid++
		le.PutUint32(execRec[procOff:], pid)
		exitProc := unsafe.Offsetof(processExitEvent{}.Proc)
		le.PutUint32(exitRec[exitProc:], pid)
		le.PutUint64(exitRec[exitProc+24:], 123000000) // exec record's start time
		p.handle(execRec)
		p.handle(exitRec)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/event")
}

func BenchmarkHandleExecExitNoSubscriber(b *testing.B) { benchHandle(b, false) }
func BenchmarkHandleExecExitSubscriber(b *testing.B)   { benchHandle(b, true) }
