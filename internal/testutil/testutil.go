// Package testutil holds helpers shared by vigil's kernel and end-to-end
// tests: privilege checks that skip with a clear reason, free ports, building
// the binary, marker executables, waiting, scraping /metrics, and finding the
// BPF programs a process holds.
//
// Kernel tests must tolerate other activity on the machine, so every helper
// here works with exact identities (a pid, a unique marker name, a port the
// test bound) rather than global counts.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root, and in -short mode
// (`make unit`). Kernel tests call it (or RequireBPF) first; CI runs them as
// root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: needs root and the real kernel")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (loading eBPF programs and creating cgroups); run `sudo go test` — CI runs these as root")
	}
}

// RequireBPF skips the test unless the process may load BPF programs: root
// (or CAP_BPF+CAP_PERFMON) and kernel BTF.
func RequireBPF(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("skipped: kernel has no BTF at /sys/kernel/btf/vmlinux")
	}
}

// SkipIfNotPermitted skips when err says the kernel refused BPF (EPERM,
// e.g. under lockdown or in an unprivileged container), and fails the test
// on any other error.
func SkipIfNotPermitted(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || strings.Contains(err.Error(), "missing privilege") {
		t.Skipf("skipped: BPF not permitted here: %v", err)
	}
	t.Fatal(err)
}

// FreeAddr returns a loopback "127.0.0.1:port" address that was free a
// moment ago (the kernel picked it; the listener is closed again).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// Marker returns a unique name with the given prefix, short enough to stay
// whole in a 15-character comm when prefix is short (e.g. "vt" → "vt-1a2b3c4d").
func Marker(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// MarkerExecutable copies src (e.g. /bin/true) into a fresh temporary
// directory under a unique basename and returns its path. Execs of it are
// then attributable to the test alone.
func MarkerExecutable(t testing.TB, src, prefix string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), Marker(prefix))
	if err := CopyFile(src, dst, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// CopyFile copies src to dst with mode perm.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ModuleRoot returns the repository root (the directory holding go.mod),
// found from the calling test's working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// BuildBinary runs `go build -o dir/name pkg` from the module root and
// returns the binary's path. It takes no testing.TB so TestMain can call it.
func BuildBinary(pkg, dir, name string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// WaitFor polls cond every 10 ms until it returns true or timeout passes,
// and reports whether it did.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on hybrid ones.
func Cgroup2Mount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}
