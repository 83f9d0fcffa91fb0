package l7

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/testutil"
)

// bpfTime sums run time and runs of the probe's programs whose BPF name
// contains one of the parts (bpf_stats must be on).
func bpfTime(tb testing.TB, p *Probe, parts ...string) (time.Duration, uint64) {
	var d time.Duration
	var n uint64
	for _, pr := range p.Obj.Programs {
		match := false
		for _, s := range parts {
			match = match || strings.Contains(pr.BPFProgram, s)
		}
		if !match {
			continue
		}
		st, err := pr.Prog.Stats()
		if err != nil {
			tb.Fatal(err)
		}
		d += st.Runtime
		n += st.RunCount
	}
	return d, n
}

// BenchmarkCapturedSyscall is a 64-byte write and read on a tracked loopback
// connection (two captured syscalls per op). It reports the BPF time of the
// data programs (enter and exit) per captured syscall and each program's
// mean run time (over every process's runs); off is the same loop without
// the probe, for the wall-time difference.
//
// Every process's reads and writes run the programs, so on a busy host
// the totals include other processes' (untracked) runs: bpf-ns/captured-
// syscall is an upper bound. net-bpf-ns/captured-syscall removes them:
// the runs beyond the loop's four per op, at the mean cost of a run
// measured while the benchmark itself was idle just before.
func BenchmarkCapturedSyscall(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var p *Probe
			if on {
				stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
				testutil.SkipIfNotPermitted(b, err)
				defer stats.Close()
				p, _ = startProbe(b, DefaultConfig())
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			acc := make(chan net.Conn, 1)
			go func() { c, _ := ln.Accept(); acc <- c }()
			client, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			server := <-acc
			defer server.Close()
			msg, buf := make([]byte, 64), make([]byte, 64)
			var d0 time.Duration
			var n0 uint64
			var background float64 // ns per run of other processes' calls
			if p != nil {
				d0, n0 = bpfTime(b, p, "_read", "_write", "_recv", "_send")
				time.Sleep(500 * time.Millisecond)
				d1, n1 := bpfTime(b, p, "_read", "_write", "_recv", "_send")
				if n1 > n0 {
					background = float64(d1-d0) / float64(n1-n0)
				}
				d0, n0 = d1, n1
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(server, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if p != nil {
				d, n := bpfTime(b, p, "_read", "_write", "_recv", "_send")
				// All the data programs' time over the loop, divided by its
				// 2·N captured syscalls: an upper bound, since the host's
				// other reads and writes (untracked, cheaper) run them too.
				ops := float64(b.N)
				b.ReportMetric(float64(d-d0)/(2*ops), "bpf-ns/captured-syscall")
				b.ReportMetric(float64(n-n0)/ops, "prog-runs/op")
				if others := float64(n-n0) - 4*ops; others > 0 {
					b.ReportMetric((float64(d-d0)-others*background)/(2*ops), "net-bpf-ns/captured-syscall")
				} else {
					b.ReportMetric(float64(d-d0)/(2*ops), "net-bpf-ns/captured-syscall")
				}
				for _, part := range []string{"enter_write", "exit_write", "enter_read", "exit_read"} {
					d, n := bpfTime(b, p, part)
					b.ReportMetric(float64(d)/float64(n), part+"-ns/run")
				}
			}
		})
	}
}

// BenchmarkUntrackedSyscall is a write and read on a pipe while the probe
// runs: the cost every process pays on a data syscall of an fd the probe
// does not track (the enter program's table miss; the exit program finds no
// saved call).
func BenchmarkUntrackedSyscall(b *testing.B) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	testutil.SkipIfNotPermitted(b, err)
	defer stats.Close()
	p, _ := startProbe(b, DefaultConfig())
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	buf := make([]byte, 64)
	d0, n0 := bpfTime(b, p, "_read", "_write")
	for b.Loop() {
		if _, err := syscall.Write(fds[1], buf); err != nil {
			b.Fatal(err)
		}
		if _, err := syscall.Read(fds[0], buf); err != nil {
			b.Fatal(err)
		}
	}
	d, n := bpfTime(b, p, "_read", "_write")
	// Other processes' reads and writes run the programs too; the figure
	// is the mean over all of them, which are untracked as well.
	if calls := float64(n-n0) / 2; calls > 0 {
		b.ReportMetric(float64(d-d0)/calls, "bpf-ns/syscall")
	}
}

// BenchmarkHandle is the user-space cost of one 256-byte record: decode,
// base64, event construction and publication to a subscriber.
func BenchmarkHandle(b *testing.B) {
	bus := event.NewBus()
	sub := bus.Subscribe("bench", 1<<20, KindConnData)
	go func() {
		for range sub.C() {
		}
	}()
	p := New(DefaultConfig())
	p.Clock = kernel.NewClock()
	p.Env = &probe.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Bus: bus}
	h := l7ConnData{Generation: 1, Fd: 5, Len: 1000, Captured: 256, Dir: dirRead, Role: roleServer, Syscall: 1, Family: afInet, Sport: 80, Dport: 40000}
	rec := rawRecord(h, bytes.Repeat([]byte("x"), 256))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.handle(rec); err != nil {
			b.Fatal(err)
		}
	}
}
