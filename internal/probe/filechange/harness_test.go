package filechange

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
	"github.com/vigilproject/vigil/internal/testutil"
)

// The test binary doubles as the child whose calls are traced.
func TestMain(m *testing.M) {
	if script := os.Getenv("VIGIL_FC_CHILD"); script != "" {
		childMain(script)
		return
	}
	os.Exit(m.Run())
}

// childCall is one call the child makes: a syscall number and arguments,
// where string arguments are given in Str (index → text) and fd arguments
// name files the child opens first (Open: index → path).
type childCall struct {
	Name string         `json:"name"`
	NR   uintptr        `json:"nr"`
	Args [6]int64       `json:"args"`
	Str  map[int]string `json:"str,omitempty"`
	Open map[int]string `json:"open,omitempty"` // O_PATH|O_DIRECTORY for dirs, O_RDWR for files
	Dir  map[int]bool   `json:"dir,omitempty"`
	Cwd  string         `json:"cwd,omitempty"` // chdir here first
	// How passes openat2's struct open_how at argument 2 (flags from
	// Args[2], mode from Args[3]) and its size at argument 3.
	How bool `json:"how,omitempty"`
}

// childResult is what the kernel returned, and the fds it used.
type childResult struct {
	Name string        `json:"name"`
	Ret  int64         `json:"ret"` // 0, or -errno
	FDs  map[int]int64 `json:"fds,omitempty"`
}

// childMain reads calls (JSON) from the file named by script, waits for a
// line on stdin, makes them with raw syscalls and prints the results.
func childMain(script string) {
	b, err := os.ReadFile(script)
	if err != nil {
		os.Exit(2)
	}
	var calls []childCall
	if err := json.Unmarshal(b, &calls); err != nil {
		os.Exit(3)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		os.Exit(4)
	}
	var out []childResult
	for _, c := range calls {
		if c.Cwd != "" {
			if err := unix.Chdir(c.Cwd); err != nil {
				os.Exit(5)
			}
		}
		res := childResult{Name: c.Name, FDs: map[int]int64{}}
		var a [6]uintptr
		var keep []*byte
		for i, v := range c.Args {
			a[i] = uintptr(v)
		}
		for i, s := range c.Str {
			p, _ := unix.BytePtrFromString(s)
			keep = append(keep, p)
			a[i] = uintptr(unsafe.Pointer(p))
		}
		for i, path := range c.Open {
			flags := unix.O_RDWR
			if c.Dir[i] {
				flags = unix.O_RDONLY | unix.O_DIRECTORY
			}
			fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
			if err != nil {
				os.Exit(6)
			}
			defer unix.Close(fd)
			a[i] = uintptr(fd)
			res.FDs[i] = int64(fd)
		}
		var how unix.OpenHow
		if c.How {
			how = unix.OpenHow{Flags: uint64(c.Args[2]), Mode: uint64(c.Args[3])}
			a[2], a[3] = uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how)
		}
		r1, _, e := unix.Syscall6(c.NR, a[0], a[1], a[2], a[3], a[4], a[5])
		res.Ret = int64(r1)
		if e != 0 {
			res.Ret = -int64(e)
		}
		runtime.KeepAlive(keep)
		runtime.KeepAlive(&how)
		out = append(out, res)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(t *testing.T, calls []childCall) *child {
	t.Helper()
	script := filepath.Join(t.TempDir(), "calls.json")
	b, _ := json.Marshal(calls)
	if err := os.WriteFile(script, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIGIL_FC_CHILD="+script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child did not start: %q %v", line, err)
	}
	return &child{cmd: cmd, stdin: stdin, out: out}
}

func (c *child) run(t *testing.T) map[string]childResult {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c.out)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	var res []childResult
	if err := json.Unmarshal(rest, &res); err != nil {
		t.Fatalf("child output %q: %v", rest, err)
	}
	m := map[string]childResult{}
	for _, r := range res {
		m[r.Name] = r
	}
	return m
}

func startProbe(tb testing.TB, cfg *Config, bus *event.Bus) (*Probe, *prometheus.Registry) {
	tb.Helper()
	testutil.RequireBPF(tb)
	p := New(cfg)
	reg := prometheus.NewRegistry()
	env := &probe.Env{
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: reg,
		Bus:        bus,
		Procs:      proc.NewCache(1024, proc.NewCgroups("/sys/fs/cgroup", 1024)),
		LabelLimit: 10,
	}
	testutil.SkipIfNotPermitted(tb, p.Start(env))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			tb.Errorf("Run: %v", err)
		}
		_ = p.Close()
	})
	return p, reg
}

// collect reads file_change events of pid until done says it has all it
// needs or the timeout passes.
func collect(sub *event.Subscription, pid int, timeout time.Duration, done func([]*FileChange) bool) []*FileChange {
	var got []*FileChange
	deadline := time.After(timeout)
	for !done(got) {
		select {
		case e := <-sub.C():
			if fc := e.(*FileChange); int(fc.PID) == pid {
				got = append(got, fc)
			}
		case <-deadline:
			return got
		}
	}
	return got
}

// realTempDir is a fresh directory with symlinks in its path resolved (the
// kernel reports the real path).
func realTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustWrite(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}
