package syscalls

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// Workload of the child, run on one OS thread named by VIGIL_SYSCALLS_CHILD.
const (
	nGetppid   = 1000
	nFchmodBad = 7  // fchmod(-1, 0): EBADF
	nGetcwd    = 50 // getcwd
	nSleeps    = 3  // clock_nanosleep(CLOCK_MONOTONIC, 20 ms): the Go runtime itself uses nanosleep, never this
	sleepFor   = 20 * time.Millisecond
)

func TestMain(m *testing.M) {
	if name := os.Getenv("VIGIL_SYSCALLS_CHILD"); name != "" {
		childMain(name)
		return
	}
	os.Exit(m.Run())
}

// childMain waits for "go", runs the workload on a thread whose comm is
// name, prints "done" and waits for stdin to close.
func childMain(name string) {
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(2)
	}
	done := make(chan struct{})
	var slept [nSleeps]time.Duration
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread ends with the goroutine
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append([]byte(name), 0)[0])), 0, 0, 0); err != nil {
			os.Exit(3)
		}
		for range nGetppid {
			unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		}
		for range nFchmodBad {
			if _, _, e := unix.RawSyscall(unix.SYS_FCHMOD, ^uintptr(0), 0, 0); e != unix.EBADF {
				os.Exit(4)
			}
		}
		buf := make([]byte, 4096)
		for range nGetcwd {
			unix.RawSyscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
		}
		ts := unix.NsecToTimespec(sleepFor.Nanoseconds())
		for i := range nSleeps {
			t0 := time.Now()
			unix.Syscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
			slept[i] = time.Since(t0)
		}
	}()
	<-done
	// What the child measured around each sleep: an upper bound of what
	// the kernel measured between syscall entry and exit.
	fmt.Println("done", int64(slept[0]), int64(slept[1]), int64(slept[2]))
	_, _ = io.Copy(io.Discard, in)
}

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
	comm  string
	slept []time.Duration // the child's own timing of each sleep
}

func startChild(t *testing.T) *child {
	t.Helper()
	comm := fmt.Sprintf("vsc%d", time.Now().UnixNano()%1e9)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIGIL_SYSCALLS_CHILD="+comm)
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
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child did not start: %q %v", line, err)
	}
	return &child{cmd: cmd, stdin: stdin, out: out, comm: comm}
}

// run starts the workload and waits until it is done.
func (c *child) run(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 1+nSleeps || f[0] != "done" {
		t.Fatalf("child: %q %v", line, err)
	}
	for _, x := range f[1:] {
		ns, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			t.Fatalf("child: %q", line)
		}
		c.slept = append(c.slept, time.Duration(ns))
	}
}

func startProbe(t *testing.T, cfg *Config, reg prometheus.Registerer, disabled ...kernel.HookKind) *Probe {
	t.Helper()
	p := New(cfg)
	env := &probe.Env{
		DisabledHooks: disabled,
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:    reg,
		Procs:         proc.NewCache(1024, nil),
		LabelLimit:    1 << 20,
	}
	if err := p.Start(env); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("kernel test: loading BPF not permitted: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newCgroup(t *testing.T) (string, uint64) {
	t.Helper()
	dir := filepath.Join(proc.NewCgroups("/sys/fs/cgroup", 1).Root(), fmt.Sprintf("vigil-test-sc-%d-%d", os.Getpid(), time.Now().UnixNano()))
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

// byName sums stats of one comm and cgroup per syscall name.
func byName(stats []Stat, comm string, cgroupID uint64) map[string]*Stat {
	out := map[string]*Stat{}
	for i := range stats {
		s := &stats[i]
		if s.Comm != comm || s.CgroupID != cgroupID {
			continue
		}
		agg := out[s.Syscall()]
		if agg == nil {
			agg = &Stat{Nr: s.Nr, Comm: s.Comm, CgroupID: s.CgroupID}
			out[s.Syscall()] = agg
		}
		agg.Count += s.Count
		agg.Errors += s.Errors
		agg.TotalNS += s.TotalNS
		for b := range agg.Hist {
			agg.Hist[b] += s.Hist[b]
		}
	}
	return out
}
