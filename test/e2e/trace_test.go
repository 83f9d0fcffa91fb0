package e2e

import (
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

// `vigil trace exec` as a table, filtered by comm: only the marker's rows,
// with exact PID, PPID, UID, COMM, RET and ARGS columns.
func TestTraceExecTable(t *testing.T) {
	testutil.RequireBPF(t)
	exe := testutil.MarkerExecutable(t, "/bin/true", "vt")
	base := filepath.Base(exe)
	p := start(t, vigilBin, "trace", "exec", "--comm", base)
	if !testutil.WaitFor(15*time.Second, func() bool {
		_ = exec.Command(exe, "ready").Run()
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(p.stdout.String(), " ready")
	}) {
		t.Fatalf("trace not ready; stderr:\n%s", p.stderr)
	}
	_ = exec.Command("/bin/true", "not-"+base).Run() // filtered out: other comm
	cmd := exec.Command(exe, "one", "two words")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if !testutil.WaitFor(10*time.Second, func() bool { return strings.Contains(p.stdout.String(), "two words") }) {
		t.Fatalf("exec not shown:\n%s", p.stdout)
	}
	if code := p.signal(t, syscall.SIGINT, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT", code)
	}
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "TIME PID PPID UID COMM RET ARGS" {
		t.Errorf("header %q", lines[0])
	}
	var row []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 7 || f[4] != base {
			t.Errorf("row of another command passed the --comm filter: %q", l)
			continue
		}
		if f[1] == pid {
			row = f
		}
	}
	want := []string{pid, strconv.Itoa(os.Getpid()), "0", base, "0", exe, "one", `"two`, `words"`}
	if row == nil || strings.Join(row[1:], " ") != strings.Join(want, " ") {
		t.Errorf("row %q, want TIME followed by %q", row, want)
	}
	if strings.Contains(p.stdout.String(), "not-"+base) {
		t.Error("--comm filter let another command through")
	}
}

// The JSON fields are the stable names rules use.
func TestTraceExecJSONFields(t *testing.T) {
	testutil.RequireBPF(t)
	exe := testutil.MarkerExecutable(t, "/bin/true", "vj")
	p := start(t, vigilBin, "trace", "exec", "-o", "json", "--comm", filepath.Base(exe))
	if !testutil.WaitFor(15*time.Second, func() bool {
		_ = exec.Command(exe, "x").Run()
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(p.stdout.String(), "\n")
	}) {
		t.Fatalf("no output; stderr:\n%s", p.stderr)
	}
	p.signal(t, syscall.SIGINT, 10*time.Second)
	line, _, _ := strings.Cut(p.stdout.String(), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kind", "time", "pid", "tid", "ppid", "uid", "gid", "comm", "exe", "start_time_ns", "cgroup_id", "filename", "args", "args_truncated", "ret"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing in %s", k, line)
		}
	}
	if m["kind"] != "exec" || m["filename"] != exe || m["exe"] != exe {
		t.Errorf("kind/filename/exe in %s", line)
	}
}

// `vigil features -o json` lists each program's chosen hook; disabling
// tp_btf in the config moves the sched programs to raw_tp.
func TestFeaturesHooks(t *testing.T) {
	testutil.RequireBPF(t)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("kernel:\n  disabled_hooks: [tp_btf]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		hook string
	}{
		{[]string{"features", "-o", "json"}, "tp_btf"},
		{[]string{"features", "-o", "json", "--config", cfg}, "raw_tp"},
	} {
		code, stdout, stderr := runVigil(t, 30*time.Second, c.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, stderr)
		}
		var out struct {
			Features []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"features"`
			Programs []struct {
				Program  string `json:"program"`
				Attached bool   `json:"attached"`
				Hook     string `json:"hook"`
			} `json:"programs"`
		}
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, stdout)
		}
		n := 0
		for _, p := range out.Programs {
			if strings.HasPrefix(p.Program, "sched_process_") {
				n++
				if !p.Attached || p.Hook != c.hook {
					t.Errorf("%v: %s attached=%v hook=%s, want %s", c.args, p.Program, p.Attached, p.Hook, c.hook)
				}
			}
		}
		if n != 3 {
			t.Errorf("%v: %d sched programs listed, want 3", c.args, n)
		}
		if len(out.Features) == 0 {
			t.Errorf("%v: no features", c.args)
		}
	}
}

// A filtered trace on a busy host: other execs keep the queue from ever
// draining, and a matching line must still reach stdout promptly instead
// of waiting in the output buffer for the next match.
func TestTraceExecShowsRareMatchUnderLoad(t *testing.T) {
	testutil.RequireBPF(t)
	exe := testutil.MarkerExecutable(t, "/bin/true", "vr")
	base := filepath.Base(exe)
	p := start(t, vigilBin, "trace", "exec", "--comm", base)
	if !testutil.WaitFor(15*time.Second, func() bool {
		_ = exec.Command(exe, "ready").Run()
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(p.stdout.String(), " ready")
	}) {
		t.Fatalf("trace not ready; stderr:\n%s", p.stderr)
	}
	// Background noise: a shell exec'ing /bin/true back to back.
	noise := exec.Command("/bin/sh", "-c", "while :; do /bin/true; done")
	if err := noise.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = noise.Process.Kill(); _ = noise.Wait() })
	time.Sleep(300 * time.Millisecond)
	if err := exec.Command(exe, "rare-match").Run(); err != nil {
		t.Fatal(err)
	}
	if !testutil.WaitFor(2*time.Second, func() bool { return strings.Contains(p.stdout.String(), "rare-match") }) {
		t.Fatalf("matching exec not on stdout within 2 s while other execs pour in:\n%s", p.stdout)
	}
}
