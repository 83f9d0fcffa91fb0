package derive_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe/process"
	"github.com/vigilproject/vigil/internal/testutil"
)

// With the real process probe: a shell that execs a program which exits 7
// gives exactly one process_lifetime event for that pid, carrying the
// last exec's argv and the exit's code.
func TestProcessLifetimeFromKernel(t *testing.T) {
	testutil.RequireBPF(t)
	cfg, err := config.Parse([]byte(""), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), []string{process.Name})
	if err != nil {
		t.Fatal(err)
	}
	sub := a.Bus.Subscribe("test", 4096, event.KindProcessLifetime)
	testutil.SkipIfNotPermitted(t, a.Start())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent run: %v", err)
		}
		_ = a.Close()
	}()
	if !testutil.WaitFor(5*time.Second, func() bool { return a.Bus.Wants(event.KindExec) }) {
		t.Fatal("the process_lifetime deriver did not subscribe to exec")
	}

	marker := testutil.Marker("vl")
	// sh execs sh again (exec replaces the program; the pid stays), which
	// sleeps 0.2 s and exits 7.
	cmd := exec.Command("/bin/sh", "-c", `exec /bin/sh -c "sleep 0.2; exit 7" `+marker)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("shell: %v, want exit status 7", err)
	}
	wall := time.Since(start).Seconds()

	var got []*event.ProcessLifetime
	deadline := time.After(10 * time.Second)
	for len(got) == 0 {
		select {
		case ev := <-sub.C():
			if pl := ev.(*event.ProcessLifetime); int(pl.PID) == pid {
				got = append(got, pl)
			}
		case <-deadline:
			t.Fatalf("no process_lifetime event for pid %d", pid)
		}
	}
	// Drain briefly: a second event for the same pid would be a bug.
	for extra := time.After(300 * time.Millisecond); ; {
		select {
		case ev := <-sub.C():
			if int(ev.EventHeader().PID) == pid {
				t.Fatalf("second process_lifetime for pid %d: %+v", pid, ev)
			}
			continue
		case <-extra:
		}
		break
	}
	pl := got[0]
	wantArgs := []string{"/bin/sh", "-c", "sleep 0.2; exit 7", marker}
	if pl.Filename != "/bin/sh" || !slices.Equal(pl.Args, wantArgs) || pl.Execs != 2 || pl.ExitCode != 7 || pl.Signal != 0 {
		t.Errorf("got filename %q args %q execs %d code %d signal %d; want /bin/sh %q 2 7 0",
			pl.Filename, pl.Args, pl.Execs, pl.ExitCode, pl.Signal, wantArgs)
	}
	if int(pl.PPID) != os.Getpid() || pl.StartNS == 0 {
		t.Errorf("ppid %d start %d, want ppid %d and a start time", pl.PPID, pl.StartNS, os.Getpid())
	}
	if pl.RunSeconds < 0.2 || pl.RunSeconds > pl.LifetimeSeconds || pl.LifetimeSeconds > wall {
		t.Errorf("run %.3fs lifetime %.3fs wall %.3fs: want 0.2 <= run <= lifetime <= wall", pl.RunSeconds, pl.LifetimeSeconds, wall)
	}
	a.Bus.Unsubscribe(sub)
	if sub.Lost.Load() != 0 {
		t.Errorf("test subscriber lost %d events", sub.Lost.Load())
	}
}
