package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// A 4 KiB ring under a tight openat loop loses events; `vigil trace open -o
// json` must account for every one: printed events plus the counts of its
// {"kind":"lost"} records equal the child's opens, and stderr says so.
func TestTraceOpenReportsLostEvents(t *testing.T) {
	testutil.RequireBPF(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, []byte("probes:\n  open:\n    ringbuf_size: 4096\n    ringbuf_wakeup_bytes: 1024\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 200000
	const marker = "/nonexistent/vigil-trace-ready"
	// The child says when its own start-up opens are over, then opens a
	// marker path every 20 ms until told to go (so the test sees when the
	// trace really delivers events), then opens exactly n files.
	child := exec.Command(py, "-c", `import os, sys, select
print("up", flush=True)
while not select.select([sys.stdin], [], [], 0.02)[0]:
    try:
        os.close(os.open("`+marker+`", os.O_RDONLY))
    except OSError:
        pass
sys.stdin.readline()
for _ in range(`+strconv.Itoa(n)+`):
    os.close(os.open("/etc/hostname", os.O_RDONLY))
`)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	pid := child.Process.Pid
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "up\n" {
		t.Fatalf("child: %q, %v", line, err)
	}

	p := start(t, vigilBin, "trace", "open", "-c", cfg, "-o", "json", "--pid", strconv.Itoa(pid))
	// Ready when the child's marker opens come out of the trace: every
	// program is attached and events flow to the printer. (Marker opens
	// come 50 a second: a 4 KiB ring does not overflow on them.)
	if !testutil.WaitFor(30*time.Second, func() bool {
		return strings.Contains(p.stdout.String(), `"path":"`+marker+`"`)
	}) {
		t.Fatalf("trace shows no events; stderr:\n%s", p.stderr)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}
	// Every open must show up, printed or counted in a lost record (those
	// come every 2s); then the trace is stopped and must not count more.
	var printed, lost uint64
	var totals map[string]uint64
	if !testutil.WaitFor(60*time.Second, func() bool {
		printed, lost, totals = countTrace(t, p.stdout.String(), pid)
		return printed+lost >= n
	}) {
		t.Errorf("after 60s: printed %d + lost %d = %d, want the child's %d opens", printed, lost, printed+lost, n)
	}
	if code := p.signal(t, syscall.SIGINT, 10*time.Second); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, p.stderr)
	}
	printed, lost, totals = countTrace(t, p.stdout.String(), pid)
	t.Logf("%d opens: %d printed, %d reported lost %v", n, printed, lost, totals)
	if lost == 0 {
		t.Fatalf("a 4 KiB ring lost nothing under %d opens; the test proves nothing", n)
	}
	if printed+lost != n {
		t.Errorf("at exit: printed %d + lost %d = %d, want the child's %d opens", printed, lost, printed+lost, n)
	}
	stderr := p.stderr.String()
	if !strings.Contains(stderr, "vigil: warning: lost events") && !strings.Contains(stderr, "events lost in total") {
		t.Errorf("no loss warning on stderr:\n%s", stderr)
	}
	if !strings.Contains(stderr, "events lost in total: open: ") {
		t.Errorf("no loss summary at exit on stderr:\n%s", stderr)
	}
}

// countTrace counts the child's open events and the lost counts in the JSON
// output of `vigil trace open` (a partial last line is ignored).
func countTrace(t *testing.T, out string, pid int) (printed, lost uint64, totals map[string]uint64) {
	t.Helper()
	totals = map[string]uint64{}
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i+1]
	} else {
		out = ""
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Kind   string `json:"kind"`
			PID    int    `json:"pid"`
			Path   string `json:"path"`
			Probe  string `json:"probe"`
			Reason string `json:"reason"`
			Count  uint64 `json:"count"`
			Total  uint64 `json:"total"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		switch rec.Kind {
		case "lost":
			if rec.Probe != "open" {
				t.Errorf("lost record for probe %q", rec.Probe)
			}
			lost += rec.Count
			totals[rec.Reason] = rec.Total
		case "open":
			if rec.PID == pid && strings.HasPrefix(rec.Path, "/nonexistent/vigil-trace-ready") {
				continue // readiness markers, before the counted opens
			}
			if rec.PID != pid || rec.Path != "/etc/hostname" {
				t.Errorf("event of pid %d path %q passed the --pid %d filter", rec.PID, rec.Path, pid)
				continue
			}
			printed++
		default:
			t.Errorf("unexpected record kind %q", rec.Kind)
		}
	}
	return printed, lost, totals
}
