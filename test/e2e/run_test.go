package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// agent is a running `vigil run` on a free loopback port.
type agent struct {
	*proc
	addr    string
	started time.Time
	healthy time.Duration // process start to first /healthz 200
}

func startAgent(t *testing.T, extra ...string) *agent {
	t.Helper()
	testutil.RequireBPF(t)
	addr := testutil.FreeAddr(t)
	a := &agent{addr: addr, started: time.Now()}
	a.proc = start(t, vigilBin, append([]string{"run", "--web.listen-address", addr}, extra...)...)
	if !testutil.WaitFor(10*time.Second, func() bool {
		select {
		case <-a.done:
			return true
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("/healthz did not answer within 10s; stderr:\n%s", a.stderr)
	}
	select {
	case <-a.done:
		t.Fatalf("vigil run exited: %v; stderr:\n%s", a.err, a.stderr)
	default:
	}
	a.healthy = time.Since(a.started)
	return a
}

func (a *agent) scrape(t *testing.T) testutil.Metrics {
	t.Helper()
	m, err := testutil.Scrape("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The user's check: N execs of a marker executable move the exec and exit
// counters by exactly N; the exposition passes promtool; SIGTERM detaches
// everything and exits 0.
func TestRunCountsExactly(t *testing.T) {
	a := startAgent(t)
	t.Logf("process start to /healthz: %v", a.healthy)

	resp, err := http.Get("http://" + a.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body.String() != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body.String())
	}

	progs, err := testutil.ProgramIDsOf(a.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(progs) == 0 {
		t.Fatal("the running agent holds no BPF programs")
	}

	exe := testutil.MarkerExecutable(t, "/bin/true", "ve")
	base := filepath.Base(exe)
	execs := map[string]string{"executable": base}
	exits := map[string]string{"executable": base, "outcome": "success"}
	before := a.scrape(t)
	if v := before.Value("vigil_process_execs_total", execs); v != 0 {
		t.Fatalf("marker counted before it ran: %v", v)
	}
	const n = 25
	for i := 0; i < n; i++ {
		if err := exec.Command(exe, "arg", fmt.Sprint(i)).Run(); err != nil {
			t.Fatal(err)
		}
	}
	var m testutil.Metrics
	if !testutil.WaitFor(10*time.Second, func() bool {
		m = a.scrape(t)
		return m.Value("vigil_process_execs_total", execs) >= n && m.Value("vigil_process_exits_total", exits) >= n
	}) {
		t.Fatalf("counters did not reach %d: execs %v exits %v", n, m.Value("vigil_process_execs_total", execs), m.Value("vigil_process_exits_total", exits))
	}
	time.Sleep(300 * time.Millisecond) // anything extra would have arrived by now
	m = a.scrape(t)
	if v := m.Value("vigil_process_execs_total", execs); v != n {
		t.Errorf("vigil_process_execs_total{executable=%q} moved by %v, want exactly %d", base, v, n)
	}
	if v := m.Value("vigil_process_exits_total", exits); v != n {
		t.Errorf("vigil_process_exits_total{executable=%q,outcome=success} moved by %v, want exactly %d", base, v, n)
	}
	if v := m.Value("vigil_process_exits_total", map[string]string{"executable": base}); v != n {
		t.Errorf("exits of the marker with any outcome: %v, want %d", v, n)
	}

	// Self-metrics a user relies on.
	for _, prog := range []string{"sched_process_exec", "sched_process_exit", "sched_process_fork"} {
		if v := m.Value("vigil_probe_program_attached", map[string]string{"probe": "process", "program": prog}); v != 1 {
			t.Errorf("vigil_probe_program_attached{program=%s} = %v", prog, v)
		}
	}
	if v := m.Value("vigil_probe_events_received_total", map[string]string{"probe": "process"}); v < 2*n {
		t.Errorf("vigil_probe_events_received_total = %v, want ≥ %d", v, 2*n)
	}
	if v, ok := m.Get("vigil_probe_events_dropped_total", map[string]string{"probe": "process"}); !ok || v != 0 {
		t.Errorf("vigil_probe_events_dropped_total = %v (present %v), want 0", v, ok)
	}
	if _, ok := m.Get("vigil_build_info", nil); !ok {
		t.Error("no vigil_build_info")
	}
	if v := m.Value("vigil_process_lifetime_seconds", nil); v < n {
		t.Errorf("lifetime histogram count %v, want ≥ %d", v, n)
	}
	if v := m.Value("vigil_bpf_program_runs_total", map[string]string{"program": "sched_process_exec"}); v < n {
		t.Errorf("vigil_bpf_program_runs_total{program=sched_process_exec} = %v, want ≥ %d (bpf_stats)", v, n)
	}

	checkPromtool(t, "http://"+a.addr+"/metrics")

	if !regexp.MustCompile(`startup=\d`).MatchString(a.stderr.String()) {
		t.Errorf("no startup= in the start-up log:\n%s", a.stderr)
	}
	if code := a.signal(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, a.stderr)
	}
	contains(t, "log", a.stderr.String(), "shutting down")
	assertGone(t, progs)
}

// checkPromtool runs `promtool check metrics` on the exposition.
func checkPromtool(t *testing.T, url string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus): exposition not checked")
		return
	}
	text, err := testutil.ScrapeText(url)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// assertGone checks with bpftool that none of the programs the agent held
// is still loaded (the kernel frees them asynchronously, so allow a moment).
func assertGone(t *testing.T, ids map[uint32]bool) {
	t.Helper()
	var left []string
	ok := testutil.WaitFor(5*time.Second, func() bool {
		progs, err := testutil.BPFToolPrograms()
		if err != nil {
			t.Skip("skipped attach check:", err)
		}
		left = left[:0]
		for _, p := range progs {
			if ids[p.ID] {
				left = append(left, fmt.Sprintf("%d:%s", p.ID, p.Name))
			}
		}
		return len(left) == 0
	})
	if !ok {
		t.Errorf("programs still loaded after exit: %s", strings.Join(left, " "))
	}
}

// orphans returns vigil-named programs loaded now that were not loaded
// before and that no live process holds: what a crashed or half-started
// agent would leave behind.
func orphans(t *testing.T, before map[uint32]bool) []string {
	t.Helper()
	var out []string
	testutil.WaitFor(3*time.Second, func() bool {
		progs, err := testutil.BPFToolPrograms()
		if err != nil {
			t.Skip("skipped attach check:", err)
		}
		held := testutil.HeldPrograms()
		out = out[:0]
		for _, p := range progs {
			if !before[p.ID] && !held[p.ID] && testutil.IsVigilProgramName(p.Name) {
				out = append(out, fmt.Sprintf("%d:%s", p.ID, p.Name))
			}
		}
		return len(out) == 0
	})
	return out
}

func loadedIDs(t *testing.T) map[uint32]bool {
	t.Helper()
	progs, err := testutil.BPFToolPrograms()
	if err != nil {
		t.Skip("skipped:", err)
	}
	ids := map[uint32]bool{}
	for _, p := range progs {
		ids[p.ID] = true
	}
	return ids
}

// SIGINT is as clean as SIGTERM.
func TestRunSIGINT(t *testing.T) {
	a := startAgent(t)
	progs, _ := testutil.ProgramIDsOf(a.cmd.Process.Pid)
	if code := a.signal(t, syscall.SIGINT, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT; stderr:\n%s", code, a.stderr)
	}
	assertGone(t, progs)
	if _, err := os.Stat("/proc/" + fmt.Sprint(a.cmd.Process.Pid)); err == nil {
		t.Error("process still exists")
	}
}
