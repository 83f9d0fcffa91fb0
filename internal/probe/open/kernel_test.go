package open

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// The test binary doubles as the child whose opens are traced.
func TestMain(m *testing.M) {
	if dir := os.Getenv("VIGIL_OPEN_CHILD"); dir != "" {
		childMain(dir)
		return
	}
	os.Exit(m.Run())
}

// childOp is one open the child made and what the kernel returned.
type childOp struct {
	Name  string `json:"name"`
	Ret   int    `json:"ret"`   // fd, or -errno
	Dirfd int    `json:"dirfd"` // AT_FDCWD = -100
}

// childMain waits for a line on stdin, then opens a known set of files in
// dir with raw syscalls and reports each result as JSON on stdout.
func childMain(dir string) {
	// The runtime's own start-up opens are over: tell the parent.
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(2)
	}
	if err := unix.Chdir(dir); err != nil {
		os.Exit(3)
	}
	var ops []childOp
	ret := func(r1 uintptr, errno syscall.Errno) int {
		if errno != 0 {
			return -int(errno)
		}
		return int(r1)
	}
	str := func(s string) uintptr { p, _ := unix.BytePtrFromString(s); return uintptr(unsafe.Pointer(p)) }
	const atFDCWD = unix.AT_FDCWD
	cwd := uintptr(atFDCWD & 0xffffffff) // the kernel reads dirfd as an int
	_ = cwd

	r1, _, e := unix.Syscall(unix.SYS_OPEN, str(filepath.Join(dir, "exists.txt")), unix.O_RDONLY, 0)
	ops = append(ops, childOp{"absolute", ret(r1, e), atFDCWD})
	r1, _, e = unix.Syscall(unix.SYS_OPEN, str("missing.txt"), unix.O_RDONLY, 0)
	ops = append(ops, childOp{"missing", ret(r1, e), atFDCWD})
	r1, _, e = unix.Syscall6(unix.SYS_OPENAT, cwd, str(filepath.Join(dir, "sub")), unix.O_RDONLY|unix.O_DIRECTORY, 0, 0, 0)
	dirfd := ret(r1, e)
	ops = append(ops, childOp{"dirfd", dirfd, atFDCWD})
	r1, _, e = unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), str("inner.txt"), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	ops = append(ops, childOp{"relative_dirfd", ret(r1, e), dirfd})
	r1, _, e = unix.Syscall6(unix.SYS_OPENAT, cwd, str("created.txt"), unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, 0o640, 0, 0)
	ops = append(ops, childOp{"created", ret(r1, e), atFDCWD})
	r1, _, e = unix.Syscall(unix.SYS_CREAT, str("creat.txt"), 0o600, 0)
	ops = append(ops, childOp{"creat", ret(r1, e), atFDCWD})
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_NO_SYMLINKS}
	r1, _, e = unix.Syscall6(unix.SYS_OPENAT2, cwd, str("sub/inner.txt"), uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
	ops = append(ops, childOp{"openat2", ret(r1, e), atFDCWD})
	r1, _, e = unix.Syscall6(unix.SYS_OPENAT, 9999, str("nodir.txt"), unix.O_RDONLY, 0, 0, 0)
	ops = append(ops, childOp{"bad_dirfd", ret(r1, e), 9999})
	long := "/" + strings.Repeat("x", 5000)
	r1, _, e = unix.Syscall(unix.SYS_OPEN, str(long), unix.O_RDONLY, 0)
	ops = append(ops, childOp{"too_long", ret(r1, e), atFDCWD})
	_ = json.NewEncoder(os.Stdout).Encode(ops)
}

// needBPF skips the test when it cannot load BPF programs.
func needBPF(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root (CAP_BPF, CAP_PERFMON) to load BPF programs")
	}
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIGIL_OPEN_CHILD="+dir)
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

func (c *child) run(t *testing.T) []childOp {
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
	var ops []childOp
	if err := json.Unmarshal(rest, &ops); err != nil {
		t.Fatalf("child output %q: %v", rest, err)
	}
	return ops
}

// testDir makes a directory with the files the child opens.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"exists.txt", "sub/inner.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startProbe(t *testing.T, cfg *Config, bus *event.Bus) *Probe {
	t.Helper()
	p := New(cfg)
	env := &probe.Env{
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
		Bus:        bus,
		Procs:      proc.NewCache(1024, proc.NewCgroups("/sys/fs/cgroup", 1024)),
		LabelLimit: 10,
	}
	if err := p.Start(env); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("kernel test: loading BPF not permitted: %v", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = p.Close()
	})
	return p
}

// collect reads open events until done says it has all it needs or the
// timeout passes.
func collect(t *testing.T, sub *event.Subscription, timeout time.Duration, done func([]*event.Open) bool) []*event.Open {
	t.Helper()
	var got []*event.Open
	deadline := time.After(timeout)
	for !done(got) {
		select {
		case e := <-sub.C():
			got = append(got, e.(*event.Open))
		case <-deadline:
			return got
		}
	}
	return got
}

func cgroup2Root() string { return proc.NewCgroups("/sys/fs/cgroup", 1).Root() }

// newCgroup creates a cgroup v2 leaf for the test and returns its path and id.
func newCgroup(t *testing.T) (string, uint64) {
	t.Helper()
	dir := filepath.Join(cgroup2Root(), fmt.Sprintf("vigil-test-open-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating a test cgroup (needs a writable cgroup v2 hierarchy): %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

func moveTo(t *testing.T, cgroupDir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("moving pid %d to %s: %v", pid, cgroupDir, err)
	}
}
