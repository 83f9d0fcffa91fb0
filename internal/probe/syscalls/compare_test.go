package syscalls

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tool is a reference tool running on the side of the workload.
type tool struct {
	cmd   *exec.Cmd
	lines chan []string
}

// startTool runs argv, waits until a line of its stdout or stderr contains
// ready, and collects all its output lines.
func startTool(t *testing.T, ready string, argv ...string) *tool {
	t.Helper()
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		t.Skipf("comparison test: %s is not installed (Debian: libbpf-tools, strace)", argv[0])
	}
	if _, err := exec.LookPath("stdbuf"); err != nil {
		t.Skip("comparison test: stdbuf (coreutils) not found")
	}
	cmd := exec.Command("stdbuf", append([]string{"-oL", bin}, argv[1:]...)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tl := &tool{cmd: cmd, lines: make(chan []string, 1)}
	readyc := make(chan struct{})
	go func() {
		var lines []string
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyc)
			}
		}
		if !seen {
			close(readyc)
		}
		_, _ = io.Copy(io.Discard, pr)
		tl.lines <- lines
	}()
	select {
	case <-readyc:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not get ready within 15s", argv[0])
	}
	return tl
}

func (tl *tool) stop() []string {
	_ = tl.cmd.Process.Signal(syscall.SIGINT)
	return <-tl.lines
}

// parseSyscount reads "NAME COUNT" rows of syscount's summary.
func parseSyscount(lines []string) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			out[f[0]] += n
		}
	}
	return out
}

// parseStrace reads strace -c's table: calls and errors per syscall.
func parseStrace(text string) (calls, errs map[string]uint64) {
	calls, errs = map[string]uint64{}, map[string]uint64{}
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		name := f[len(f)-1]
		n, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil {
			continue
		}
		calls[name] += n
		if len(f) == 6 {
			if e, err := strconv.ParseUint(f[4], 10, 64); err == nil {
				errs[name] += e
			}
		}
	}
	return calls, errs
}

// vigil's per-syscall counts for a process equal libbpf-tools syscount's and
// strace -c -f's on the same run.
func TestCompareSyscountStrace(t *testing.T) {
	needBPF(t)
	c := startChild(t)
	pid := strconv.Itoa(c.cmd.Process.Pid)
	out := filepath.Join(t.TempDir(), "strace.txt")
	strace := startTool(t, "attached", "strace", "-f", "-c", "-o", out, "-p", pid)
	syscount := startTool(t, "Tracing syscalls", "syscount", "-p", pid, "-T", "500")

	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(c.cmd.Process.Pid)}
	p := startProbe(t, cfg, prometheus.NewRegistry())
	c.run(t)
	time.Sleep(200 * time.Millisecond)

	stats, errs, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]uint64{}
	for _, s := range stats {
		ours[s.Syscall()] += s.Count
	}
	ourErrs := map[string]uint64{}
	for _, e := range errs {
		ourErrs[(&Stat{Nr: e.Nr}).Syscall()] += e.Count
	}
	scLines := syscount.stop()
	_ = strace.stop()
	theirs := parseSyscount(scLines)
	var straceText []byte
	for range 50 { // strace writes its summary on exit
		if straceText, err = os.ReadFile(out); err == nil && strings.Contains(string(straceText), "total") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sCalls, sErrs := parseStrace(string(straceText))

	for name, want := range map[string]uint64{"getppid": nGetppid, "fchmod": nFchmodBad, "getcwd": nGetcwd, "clock_nanosleep": nSleeps} {
		if ours[name] != want || theirs[name] != want || sCalls[name] != want {
			t.Errorf("%s: vigil %d, syscount %d, strace %d; the workload made %d", name, ours[name], theirs[name], sCalls[name], want)
		}
	}
	if ourErrs["fchmod"] != nFchmodBad || sErrs["fchmod"] != nFchmodBad {
		t.Errorf("fchmod errors: vigil %d, strace %d; want %d", ourErrs["fchmod"], sErrs["fchmod"], nFchmodBad)
	}
	t.Logf("vigil:    %v", ours)
	t.Logf("syscount: %v", theirs)
	t.Logf("strace:   %v", sCalls)
}
