package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// A taken port: one clear message, non-zero exit, and nothing attached.
func TestPortInUse(t *testing.T) {
	testutil.RequireBPF(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	before := loadedIDs(t)

	code, _, stderr := runVigil(t, 10*time.Second, "run", "--web.listen-address", addr)
	if code == 0 {
		t.Fatalf("exit 0 with port %s taken", addr)
	}
	contains(t, "stderr", stderr, addr, "port already in use", "--web.listen-address")
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
		t.Errorf("want one line of error, got %d:\n%s", n+1, stderr)
	}
	if left := orphans(t, before); len(left) > 0 {
		t.Errorf("programs left loaded: %v", left)
	}
}

func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: info\nprobes:\n  process:\n    max_arg: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "--config", bad, "--web.listen-address", "127.0.0.1:0"},
		{"config", "check", bad},
	} {
		code, _, stderr := runVigil(t, 10*time.Second, args...)
		if code == 0 {
			t.Errorf("%v: exit 0 with a bad config", args)
		}
		contains(t, strings.Join(args[:2], " "), stderr, bad+": line 5", `unknown key "max_arg" in probes.process`, "max_args")
	}

	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("probes:\n  process:\n    max_args: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runVigil(t, 10*time.Second, "config", "check", good)
	if code != 0 {
		t.Errorf("config check of a good file: exit %d: %s", code, stderr)
	}
	contains(t, "stdout", stdout, good+": OK")
}

// A config that cannot be read: a missing file, a directory, a file the
// user may not read (as nobody, since root reads everything).
func TestUnreadableConfig(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	code, _, stderr := runVigil(t, 10*time.Second, "run", "--config", missing, "--web.listen-address", "127.0.0.1:0")
	if code == 0 {
		t.Error("exit 0 with a missing config")
	}
	contains(t, "stderr", stderr, missing, "no such file")

	code, _, stderr = runVigil(t, 10*time.Second, "run", "--config", dir, "--web.listen-address", "127.0.0.1:0")
	if code == 0 {
		t.Error("exit 0 with a directory as config")
	}
	contains(t, "stderr", stderr, dir, "is a directory")

	setpriv := asNobody(t)
	secret := filepath.Join(dir, "secret.yaml")
	if err := os.WriteFile(secret, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	out, err := exec.Command(setpriv[0], append(setpriv[1:], vigilBin, "run", "--config", secret)...).CombinedOutput()
	if err == nil {
		t.Fatalf("nobody read a 0600 root file:\n%s", out)
	}
	contains(t, "output", string(out), secret, "permission denied")
}

// asNobody returns the command prefix that runs a program as user nobody.
func asNobody(t *testing.T) []string {
	t.Helper()
	testutil.RequireRoot(t)
	path, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipped: setpriv (util-linux) not installed")
	}
	return []string{path, "--reuid=65534", "--regid=65534", "--clear-groups"}
}

// Without privileges every kernel-touching command says which privilege is
// missing, and exits non-zero, before touching the kernel.
func TestNotRoot(t *testing.T) {
	setpriv := asNobody(t)
	for _, args := range [][]string{
		{"run", "--web.listen-address", testutil.FreeAddr(t)},
		{"trace", "exec"},
		{"features"},
	} {
		cmd := exec.Command(setpriv[0], append(setpriv[1:], append([]string{vigilBin}, args...)...)...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%v as nobody did not exit", args)
		}
		if err == nil {
			t.Errorf("%v as nobody: exit 0:\n%s", args, out)
		}
		contains(t, strings.Join(args[:1], " ")+" as nobody", string(out), "missing privilege", "CAP_BPF", "CAP_PERFMON")
		if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 {
			t.Errorf("%v: want one line, got %d:\n%s", args, n+1, out)
		}
	}
}

// Root without CAP_SYS_ADMIN and CAP_PERFMON is told which capability is
// missing; with CAP_BPF and CAP_PERFMON but no CAP_SYS_ADMIN the agent runs.
func TestCapabilities(t *testing.T) {
	testutil.RequireBPF(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipped: setpriv (util-linux) not installed")
	}
	out, err := exec.Command(setpriv, "--bounding-set=-sys_admin,-perfmon", "--inh-caps=-sys_admin,-perfmon",
		vigilBin, "run", "--web.listen-address", testutil.FreeAddr(t)).CombinedOutput()
	if err == nil {
		t.Fatalf("ran without CAP_PERFMON:\n%s", out)
	}
	contains(t, "output", string(out), "missing privilege CAP_PERFMON:")
	if strings.Contains(string(out), "CAP_BPF and CAP_PERFMON:") {
		t.Errorf("CAP_BPF reported missing although held:\n%s", out)
	}

	addr := testutil.FreeAddr(t)
	p := start(t, setpriv, "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", vigilBin, "run", "--web.listen-address", addr)
	if !testutil.WaitFor(10*time.Second, func() bool {
		m, err := testutil.Scrape("http://" + addr + "/metrics")
		return err == nil && m.Value("vigil_probe_program_attached", map[string]string{"program": "sched_process_exec"}) == 1
	}) {
		t.Fatalf("agent with CAP_BPF+CAP_PERFMON did not come up; stderr:\n%s", p.stderr)
	}
	if code := p.signal(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, p.stderr)
	}
}

// A required program that can attach nowhere: one message naming it and
// the hooks tried, non-zero exit, nothing left loaded.
func TestRequiredProgramCannotAttach(t *testing.T) {
	testutil.RequireBPF(t)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("kernel:\n  disabled_hooks: [tp_btf, raw_tp]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := loadedIDs(t)
	code, _, stderr := runVigil(t, 20*time.Second, "run", "--config", cfg, "--web.listen-address", testutil.FreeAddr(t))
	if code == 0 {
		t.Fatal("exit 0 with every hook of a required program disabled")
	}
	contains(t, "stderr", stderr, "process: required program sched_process_exec could not attach",
		"tp_btf sched_process_exec: disabled by configuration", "raw_tp sched_process_exec: disabled by configuration")
	if left := orphans(t, before); len(left) > 0 {
		t.Errorf("programs left loaded: %v", left)
	}
}
