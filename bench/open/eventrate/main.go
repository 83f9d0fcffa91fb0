// Command eventrate measures open events delivered to user space: it loads
// the open probe (filtered in the kernel to the workload's comm), runs the
// openloop workload, and counts the events decoded and published on the
// event bus, the kernel's ring-buffer drops, the bus drops, and this
// process's CPU time per event.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/probe/open"
	"github.com/vigilproject/vigil/internal/proc"
)

type result struct {
	Opens           int     `json:"opens"`
	Received        uint64  `json:"events_received"`
	RingDropped     uint64  `json:"ringbuf_dropped"`
	BusDropped      uint64  `json:"bus_dropped"`
	WorkloadSeconds float64 `json:"workload_seconds"`
	DrainSeconds    float64 `json:"drain_seconds,omitempty"`
	EventsPerSecond float64 `json:"events_per_second"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUNsPerEvent   float64 `json:"cpu_ns_per_event"`
}

func main() {
	n := flag.Int("n", 1000000, "openat+close pairs the workload makes")
	loop := flag.String("openloop", "./openloop", "openloop binary")
	ring := flag.Uint("ringbuf", 4<<20, "ring buffer bytes")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	drain := flag.Bool("drain", false, "let the workload fill the ring buffer first, then time how fast user space drains it (needs -ringbuf large enough for every record)")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*n, *loop, uint32(*ring), *drain); err != nil {
		fmt.Fprintln(os.Stderr, "eventrate:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(n int, loop string, ring uint32, drain bool) error {
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
	if err := kernel.EnsureTracefs(); err != nil {
		return err
	}
	comm := filepath.Base(loop)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	cfg := open.DefaultConfig()
	cfg.Comm = comm
	cfg.RingbufSize = ring
	bus := event.NewBus()
	sub := bus.Subscribe("bench", 1<<16, event.KindOpen)
	var got atomic.Uint64
	var lastAt atomic.Int64
	go func() {
		for e := range sub.C() {
			if e.(*event.Open).PathPassed != "" {
				got.Add(1)
				lastAt.Store(time.Now().UnixNano())
			}
		}
	}()
	p := open.New(cfg)
	env := &probe.Env{
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Bus:        bus,
		Procs:      proc.NewCache(4096, proc.NewCgroups("/sys/fs/cgroup", 1024)),
		LabelLimit: 100,
	}
	if err := p.Start(env); err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if !drain {
		go func() { done <- p.Run(ctx) }()
	}

	cpu0 := cpuTime()
	out, err := exec.Command(loop, "-n", strconv.Itoa(n)).Output()
	if err != nil {
		cancel()
		return fmt.Errorf("%s: %w", loop, err)
	}
	ns, _ := strconv.ParseInt(strings.Fields(string(out) + " 0")[0], 10, 64)
	var start time.Time
	if drain {
		// Everything is in the ring now; time user space alone.
		cpu0 = cpuTime()
		start = time.Now()
		go func() { done <- p.Run(ctx) }()
	}
	// Drain: wait until the count stops moving.
	for last := uint64(0); ; {
		time.Sleep(200 * time.Millisecond)
		cur := got.Load()
		if cur == last {
			break
		}
		last = cur
	}
	cpu := cpuTime() - cpu0
	cancel()
	<-done
	drops, _ := p.Object().Dropped()
	r := result{
		Opens: n, Received: got.Load(), RingDropped: drops, BusDropped: sub.Lost.Load(),
		WorkloadSeconds: float64(ns) / 1e9, CPUSeconds: cpu.Seconds(),
	}
	r.EventsPerSecond = float64(r.Received) / r.WorkloadSeconds
	if drain {
		r.DrainSeconds = float64(lastAt.Load()-start.UnixNano()) / 1e9
		r.EventsPerSecond = float64(r.Received) / r.DrainSeconds
	}
	if r.Received > 0 {
		r.CPUNsPerEvent = float64(cpu.Nanoseconds()) / float64(r.Received)
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
