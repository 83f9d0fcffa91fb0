// Package gobintest builds small Go programs at test time, with the current
// toolchain or an older one from the module proxy, stripped or not, so tests
// of Go-binary probing run against real compiler output.
package gobintest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// OldToolchain is the older Go release tests build with besides the
// current one (downloaded by the go command from the module proxy once).
const OldToolchain = "go1.22.12"

// Variant is one way of building a program.
type Variant struct {
	Toolchain string // "" or "local": the current Go; else e.g. "go1.22.12"
	Stripped  bool   // -ldflags=-s -w: no .symtab, no DWARF
	GOARCH    string // "" is the host's
	PIE       bool   // -buildmode=pie
	External  bool   // cgo, linked by the C linker (-linkmode=external)
}

func (v Variant) String() string {
	s := v.Toolchain
	if s == "" || s == "local" {
		s = runtime.Version()
	}
	if v.Stripped {
		s += "-stripped"
	}
	if v.GOARCH != "" {
		s += "-" + v.GOARCH
	}
	if v.PIE {
		s += "-pie"
	}
	if v.External {
		s += "-external"
	}
	return s
}

// Variants are the builds every Go-binary test covers: the current and the
// old toolchain, each with and without -ldflags=-s -w.
var Variants = []Variant{{}, {Stripped: true}, {Toolchain: OldToolchain}, {Toolchain: OldToolchain, Stripped: true}}

var (
	mu    sync.Mutex
	root  string
	built = map[string]string{}
)

// Cleanup removes every program built; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if root != "" {
		os.RemoveAll(root)
	}
	root, built = "", map[string]string{}
}

// Build compiles the single-file program src (package main, standard
// library only) and returns the executable's path; a program is built once
// per variant in a test binary's life (see Cleanup). It skips the test when
// the go command is missing, and fails it when the build fails (an old
// toolchain that cannot be downloaded included: the test would otherwise
// cover less than it says).
func Build(t testing.TB, src string, v Variant) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	sum := sha256.Sum256([]byte(src))
	key := hex.EncodeToString(sum[:8]) + "-" + v.String()
	if p, ok := built[key]; ok {
		return p
	}
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "vigil-gobintest-"); err != nil {
			t.Fatal(err)
		}
	}
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build test programs")
		}
	}
	dir := filepath.Join(root, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	goVersion := "1.22"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\n\ngo "+goVersion+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	args := []string{"build", "-o", out}
	ldflags := ""
	if v.Stripped {
		ldflags = "-s -w"
	}
	if v.External {
		ldflags = strings.TrimSpace(ldflags + " -linkmode=external")
	}
	if ldflags != "" {
		args = append(args, "-ldflags="+ldflags)
	}
	if v.PIE {
		args = append(args, "-buildmode=pie")
	}
	cmd := exec.Command(goCmd, append(args, ".")...)
	cmd.Dir = dir
	tc := v.Toolchain
	if tc == "" {
		tc = "local"
	}
	cgo := "0"
	if v.External {
		cgo = "1"
	}
	env := []string{"GOTOOLCHAIN=" + tc, "CGO_ENABLED=" + cgo, "GOFLAGS=", "GOWORK=off"}
	if v.GOARCH != "" {
		env = append(env, "GOARCH="+v.GOARCH)
	}
	cmd.Env = append(filterEnv(os.Environ(), "GOTOOLCHAIN", "CGO_ENABLED", "GOFLAGS", "GOWORK", "GOARCH"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", v, err, b)
	}
	built[key] = out
	return out
}

func filterEnv(env []string, drop ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
