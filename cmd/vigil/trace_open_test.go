package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
)

// The built binary: `vigil trace open --comm C --failed --path-prefix D -o json`
// prints the failed opens of C under D and nothing else.
func TestTraceOpenCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end test: needs root to load BPF programs")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	comm := fmt.Sprintf("vt%d", time.Now().UnixNano()%1e9)
	cat := filepath.Join(dir, comm)
	if err := os.Symlink("/bin/cat", cat); err != nil {
		t.Fatal(err)
	}
	exists := filepath.Join(dir, "exists")
	if err := os.WriteFile(exists, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "trace", "open", "-o", "json", "--comm", comm, "--failed", "--path-prefix", dir+"/")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	events := make(chan event.Open, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e event.Open
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("bad JSON line %q: %v", sc.Text(), err)
				continue
			}
			events <- e
		}
		close(events)
	}()
	run := func(path string) int {
		c := exec.Command(cat, path)
		_ = c.Run()
		return c.Process.Pid
	}
	// Wait until the probe is attached: probe with a failing open.
	deadline := time.Now().Add(20 * time.Second)
	probePath := filepath.Join(dir, "probe-missing")
	for attached := false; !attached; {
		if time.Now().After(deadline) {
			t.Fatal("no event within 20s")
		}
		run(probePath)
		select {
		case e := <-events:
			if e.Path != probePath {
				t.Fatalf("first event %+v", e)
			}
			attached = true
		case <-time.After(300 * time.Millisecond):
		}
	}
	// Drain late probe events, then the real check.
	time.Sleep(300 * time.Millisecond)
	for len(events) > 0 {
		<-events
	}
	okPid := run(exists)
	missing := filepath.Join(dir, "missing")
	pid := run(missing)
	select {
	case e := <-events:
		if e.Path != missing || e.PID != uint32(pid) || e.Comm != comm || e.Error != "ENOENT" || e.FD != -1 || !e.PathResolved {
			t.Errorf("event %+v, want the failed open of %s by pid %d (not pid %d's successful open)", e, missing, pid, okPid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event for the failed open")
	}
	select {
	case e := <-events:
		t.Errorf("unexpected event %+v", e)
	case <-time.After(500 * time.Millisecond):
	}
}

// The built binary: `vigil top syscalls --once -o json` for one process
// shows that process's syscalls during the interval.
func TestTopSyscallsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end test: needs root to load BPF programs")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A shell reading a file in a loop: openat, read, close, wait4, ...
	sh := exec.Command("sh", "-c", "while :; do cat /etc/hostname >/dev/null; done")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sh.Process.Kill(); _ = sh.Wait() })
	out, err := exec.Command(bin, "top", "syscalls", "--once", "-o", "json", "--interval", "1s", "--by", "process", "-p", fmt.Sprint(sh.Process.Pid)).Output()
	if err != nil {
		t.Fatalf("vigil top syscalls: %v", err)
	}
	var v topView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	// Only the shell passes the pid filter (its children have other pids).
	if v.By != "process" || len(v.Rows) != 1 || v.Rows[0].Name != "sh" || v.Rows[0].Count == 0 || v.Rows[0].TopSyscall == "" {
		t.Errorf("view %s", out)
	}
}
