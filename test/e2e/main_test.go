// Package e2e tests the built vigil binary the way a user runs it: as a
// separate process, against the real kernel, scraped over HTTP, next to the
// reference tools (promtool, bpftool, libbpf-tools execsnoop). Most tests
// need root and skip with a reason otherwise; CI runs them as root.
package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// vigilBin is the binary under test, built once by TestMain.
var vigilBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e tests skipped in -short mode: they run the built binary against the kernel")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "vigil-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// World-readable, so the not-root test can run the binary as nobody.
	_ = os.Chmod(dir, 0o755)
	vigilBin, err = testutil.BuildBinary("./cmd/vigil", dir, "vigil")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a started vigil (or reference tool) process.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// start runs name with args, capturing output; the process is killed at
// the end of the test if still running.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to timeout for exit and returns the exit code (-1 when it
// had to be killed).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within %v; killed. stderr:\n%s", p.cmd.Path, timeout, p.stderr)
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// signal sends sig and waits for the exit code.
func (p *proc) signal(t *testing.T, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return p.wait(t, timeout)
}

// runVigil runs the binary to completion and returns exit code and output.
func runVigil(t *testing.T, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, vigilBin, args...)
	code := p.wait(t, timeout)
	return code, p.stdout.String(), p.stderr.String()
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}
