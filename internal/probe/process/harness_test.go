package process_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe/process"
	"github.com/vigilproject/vigil/internal/testutil"
)

// The test binary doubles as a helper process: with VIGIL_TEST_HELPER set it
// runs the named workload instead of the tests, so a test can spawn a
// process whose pid it knows and whose children it can count exactly.
func TestMain(m *testing.M) {
	if h := os.Getenv("VIGIL_TEST_HELPER"); h != "" {
		os.Exit(runHelper(h, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runHelper(name string, args []string) int {
	switch name {
	case "forkstorm":
		// forkstorm N: fork N children with the raw fork syscall; child i
		// exits at once with status i%250. Print "pid status" per child,
		// then reap them all.
		n, _ := strconv.Atoi(args[0])
		pids := make([]int, 0, n)
		for i := 0; i < n; i++ {
			r, _, errno := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
			if errno != 0 {
				fmt.Fprintln(os.Stderr, "fork:", errno)
				return 1
			}
			if r == 0 { // child: no Go runtime work, just leave
				syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(i%250), 0, 0)
			}
			pids = append(pids, int(r))
		}
		for i, pid := range pids {
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
				fmt.Fprintln(os.Stderr, "wait:", err)
				return 1
			}
			fmt.Printf("%d %d\n", pid, i%250)
		}
		return 0
	case "execstorm":
		// execstorm N PATH ARG: fork+exec PATH ARG N times, one at a time,
		// printing each child's pid.
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			pid, err := syscall.ForkExec(args[1], []string{args[1], args[2], strconv.Itoa(i)}, nil)
			if err != nil {
				fmt.Fprintln(os.Stderr, "forkexec:", err)
				return 1
			}
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
				return 1
			}
			fmt.Println(pid)
		}
		return 0
	case "threads":
		// threads N CODE: start N OS threads, then exit the whole process
		// with CODE from one of them.
		n, _ := strconv.Atoi(args[0])
		code, _ := strconv.Atoi(args[1])
		started := make(chan struct{})
		for i := 0; i < n; i++ {
			go func() {
				runtime.LockOSThread()
				started <- struct{}{}
				select {}
			}()
		}
		for i := 0; i < n; i++ {
			<-started
		}
		go func() {
			runtime.LockOSThread()
			os.Exit(code)
		}()
		select {}
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 2
}

// harness is a running agent with only the process probe, whose events are
// all collected for the test to search.
type harness struct {
	t      *testing.T
	a      *agent.Agent
	sub    *event.Subscription
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []event.Event
}

// startAgent loads the real process probe with the embedded defaults
// overlaid by yamlCfg, and collects every event it publishes.
func startAgent(t *testing.T, yamlCfg string) *harness {
	t.Helper()
	testutil.RequireBPF(t)
	cfg, err := config.Parse([]byte(yamlCfg), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := agent.New(cfg, log, []string{process.Name})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, a: a, done: make(chan error, 1)}
	h.sub = a.Bus.Subscribe("test", 1<<16)
	testutil.SkipIfNotPermitted(t, a.Start())
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- a.Run(ctx) }()
	go h.collect()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) collect() {
	for e := range h.sub.C() {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}
}

func (h *harness) stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("agent run: %v", err)
	}
	if err := h.a.Close(); err != nil {
		h.t.Errorf("agent close: %v", err)
	}
	h.a.Bus.Unsubscribe(h.sub)
	if n := h.sub.Lost.Load(); n > 0 {
		h.t.Errorf("test subscriber lost %d events: results are not exact", n)
	}
}

// object is the process probe's loaded BPF object.
func (h *harness) object() *kernel.Object {
	objs := h.a.Objects()
	if len(objs) != 1 {
		h.t.Fatalf("expected one BPF object, got %d", len(objs))
	}
	return objs[0]
}

// find returns the events of type T that match, in arrival order.
func find[T event.Event](h *harness, match func(T) bool) []T {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []T
	for _, e := range h.events {
		if x, ok := e.(T); ok && match(x) {
			out = append(out, x)
		}
	}
	return out
}

// waitN waits until exactly-or-more n events match, then returns them; it
// fails the test when they do not arrive within 10 s.
func waitN[T event.Event](h *harness, n int, what string, match func(T) bool) []T {
	h.t.Helper()
	var got []T
	if !testutil.WaitFor(10*time.Second, func() bool {
		got = find(h, match)
		return len(got) >= n
	}) {
		h.t.Fatalf("%s: saw %d of %d events within 10s", what, len(got), n)
	}
	return got
}

// settle waits for events already in flight (ring buffer → bus → collector)
// to be collected, so that "exactly N" assertions see everything: it causes
// one exec of its own and waits for it, which is ordered after earlier
// records on the same CPU and, with 100 ms extra, after those on others.
func (h *harness) settle() {
	h.t.Helper()
	marker := testutil.Marker("settle")
	cmd := commandArgv0("/bin/true", marker)
	if err := cmd.Run(); err != nil {
		h.t.Fatal(err)
	}
	waitN(h, 1, "settle exec", func(e *event.Exec) bool { return len(e.Args) > 0 && e.Args[0] == marker })
	time.Sleep(100 * time.Millisecond)
}

// metrics gathers the agent's registry.
func (h *harness) metrics() testutil.Metrics {
	h.t.Helper()
	m, err := testutil.Gather(h.a.Registry)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func argsEqual(a, b []string) bool { return slices.Equal(a, b) }

// startAgentErr builds an agent like startAgent and returns Start's error;
// an agent that did start is closed again.
func startAgentErr(t *testing.T, yamlCfg string) error {
	t.Helper()
	cfg, err := config.Parse([]byte(yamlCfg), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), []string{process.Name})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		return err
	}
	return a.Close()
}
