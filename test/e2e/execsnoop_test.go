package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

// execsnoop's own limits (libbpf-tools execsnoop.h): at most --max-args
// arguments (default 20, argv[0] included) followed by " ..." when there are
// more, and each argument cut to ARGSIZE-1 = 127 bytes without a mark. Args
// are printed space-separated, so arguments with spaces are ambiguous; the
// burst below uses none.
const (
	execsnoopMaxArgs = 20
	execsnoopArgSize = 127
)

func findExecsnoop(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"execsnoop", "/usr/sbin/execsnoop", "/usr/bin/execsnoop", "/usr/sbin/execsnoop-bpfcc"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("skipped: libbpf-tools execsnoop not installed (Debian package libbpf-tools)")
	return ""
}

type sighting struct {
	pid  int
	ret  int
	args []string
	more bool // execsnoop printed "..." after the args
}

func (s sighting) key() string {
	return fmt.Sprintf("%d %d %s", s.pid, s.ret, strings.Join(s.args, " "))
}

// parseExecsnoop reads "PCOMM PID PPID RET ARGS" lines.
func parseExecsnoop(out, marker string) []sighting {
	var res []sighting
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || !strings.Contains(sc.Text(), marker) {
			continue
		}
		pid, err1 := strconv.Atoi(f[1])
		ret, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		s := sighting{pid: pid, ret: ret, args: f[4:]}
		if n := len(s.args); n > 0 && s.args[n-1] == "..." {
			s.args, s.more = s.args[:n-1], true
		}
		res = append(res, s)
	}
	return res
}

type jsonExec struct {
	PID           int      `json:"pid"`
	Ret           int      `json:"ret"`
	Args          []string `json:"args"`
	ArgsTruncated bool     `json:"args_truncated"`
	Filename      string   `json:"filename"`
}

func parseVigil(t *testing.T, out, marker string) []sighting {
	t.Helper()
	var res []sighting
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), marker) {
			continue
		}
		var e jsonExec
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("vigil trace exec -o json printed a bad line %q: %v", sc.Text(), err)
		}
		res = append(res, sighting{pid: e.PID, ret: e.Ret, args: e.Args, more: e.ArgsTruncated})
	}
	return res
}

// vigil trace exec and execsnoop watch the same burst of execs of a marker
// and must report the same set of (pid, ret, argv), compared on what both
// can show.
func TestTraceExecMatchesExecsnoop(t *testing.T) {
	testutil.RequireBPF(t)
	execsnoop := findExecsnoop(t)
	snoopArgs := []string{execsnoop, "-x"}
	if stdbuf, err := exec.LookPath("stdbuf"); err == nil {
		snoopArgs = append([]string{stdbuf, "-oL"}, snoopArgs...) // line-buffered, to see readiness
	}
	snoop := start(t, snoopArgs[0], snoopArgs[1:]...)
	trace := start(t, vigilBin, "trace", "exec", "-o", "json")

	// Both are ready once both have seen an exec made after they started.
	ready := testutil.Marker("ready")
	if !testutil.WaitFor(20*time.Second, func() bool {
		_ = exec.Command("/bin/true", ready).Run()
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(snoop.stdout.String(), ready) && strings.Contains(trace.stdout.String(), ready)
	}) {
		t.Fatalf("tools not ready.\nexecsnoop stderr: %s\nvigil stderr: %s", snoop.stderr, trace.stderr)
	}

	exe := testutil.MarkerExecutable(t, "/bin/true", "vx")
	marker := filepath.Base(exe)
	var special []string // argv of the execs beyond execsnoop's limits
	const n = 80
	for i := 0; i < n; i++ {
		args := []string{"burst", strconv.Itoa(i), marker}
		switch {
		case i%10 == 9: // a failed exec, reported by the caller's pid
			cmd := exec.Command("/nonexistent-"+marker+"/prog", args...)
			if err := cmd.Run(); err == nil {
				t.Fatal("exec of a missing file succeeded")
			}
			continue
		case i == 20: // more arguments than execsnoop shows
			for j := 0; j < 30; j++ {
				args = append(args, "many"+strconv.Itoa(j))
			}
			special = append(special, strings.Join(args, " "))
		case i == 40: // an argument longer than execsnoop's 127 bytes
			args = append(args, "long"+strings.Repeat("x", 300))
			special = append(special, strings.Join(args, " "))
		}
		if err := exec.Command(exe, args...).Run(); err != nil {
			t.Fatal(err)
		}
	}
	done := testutil.Marker("done")
	if !testutil.WaitFor(20*time.Second, func() bool {
		_ = exec.Command("/bin/true", done).Run()
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(snoop.stdout.String(), done) && strings.Contains(trace.stdout.String(), done)
	}) {
		t.Fatal("tools did not see the end sentinel")
	}
	for _, p := range []*proc{snoop, trace} {
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		p.wait(t, 10*time.Second)
	}
	if strings.Contains(trace.stderr.String(), "lost") {
		t.Errorf("vigil trace lost events: %s", trace.stderr)
	}

	got := parseVigil(t, trace.stdout.String(), marker)
	ref := parseExecsnoop(snoop.stdout.String(), marker)
	if len(got) != n || len(ref) != n {
		t.Errorf("vigil saw %d execs of the burst, execsnoop %d; want %d each (execsnoop stderr: %s)", len(got), len(ref), n, snoop.stderr)
	}

	// Cut vigil's view down to what execsnoop can show, then compare sets.
	view := func(s sighting) sighting {
		v := sighting{pid: s.pid, ret: s.ret}
		for i, a := range s.args {
			if i == execsnoopMaxArgs {
				v.more = true
				break
			}
			v.args = append(v.args, a[:min(len(a), execsnoopArgSize)])
		}
		return v
	}
	set := func(ss []sighting, f func(sighting) sighting) []string {
		var out []string
		for _, s := range ss {
			out = append(out, f(s).key()+fmt.Sprintf(" more=%v", f(s).more))
		}
		sort.Strings(out)
		return out
	}
	a := set(got, view)
	b := set(ref, func(s sighting) sighting { return s })
	if !slices.Equal(a, b) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				t.Errorf("only vigil: %.200s", x)
			}
		}
		for _, x := range b {
			if !slices.Contains(a, x) {
				t.Errorf("only execsnoop: %.200s", x)
			}
		}
	}

	// Where execsnoop cuts, vigil has the whole argv.
	for _, want := range special {
		found := false
		for _, s := range got {
			if strings.Join(s.args[1:], " ") == want && !s.more {
				found = true
			}
		}
		if !found {
			t.Errorf("vigil did not report the whole argv %.80q...", want)
		}
	}
	failed := 0
	for _, s := range got {
		if s.ret == -2 && s.pid != os.Getpid() {
			failed++
		}
	}
	if failed != n/10 {
		t.Errorf("%d failed execs (ENOENT) reported, want %d", failed, n/10)
	}
}
