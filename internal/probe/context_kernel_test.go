package probe_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/probe/open"
	"github.com/vigilproject/vigil/internal/probe/process"
	"github.com/vigilproject/vigil/internal/probe/tcp"
	"github.com/vigilproject/vigil/internal/proc"
)

// statOf is what /proc/<pid>/stat says about a process: its pid, parent
// and start time (field 22, in clock ticks since boot).
type statOf struct {
	pid, ppid uint32
	comm      string
	startTick uint64
}

func parseStat(t *testing.T, line string) statOf {
	t.Helper()
	open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || close < open {
		t.Fatalf("not a /proc/<pid>/stat line: %q", line)
	}
	pid, err := strconv.ParseUint(strings.TrimSpace(line[:open]), 10, 32)
	if err != nil {
		t.Fatalf("stat pid in %q: %v", line, err)
	}
	rest := strings.Fields(line[close+1:]) // rest[0] is field 3 (state)
	if len(rest) < 20 {
		t.Fatalf("short stat line %q", line)
	}
	ppid, err1 := strconv.ParseUint(rest[1], 10, 32)
	start, err2 := strconv.ParseUint(rest[19], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("stat fields in %q: %v %v", line, err1, err2)
	}
	return statOf{pid: uint32(pid), ppid: uint32(ppid), comm: line[open+1 : close], startTick: start}
}

// clockTick is USER_HZ (100 on every Linux ABI): /proc start times are
// start_boottime truncated to it.
const clockTick = uint64(time.Second / 100)

// Every open, connect and close event of a shell's short-lived children
// carries the right parent pid, parent comm and start time, filled by the
// kernel at event time: the processes are gone before anyone could ask
// /proc, and the process cache may not have seen their exec yet.
func TestShortLivedChildrenCarryTheirParent(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root (CAP_BPF, CAP_PERFMON) to load BPF programs")
	}
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skip("needs /usr/bin/python3 for the connecting child")
	}
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched.txt")
	if err := os.WriteFile(watched, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	bus := event.NewBus()
	sub := bus.Subscribe("context-test", 1<<16, event.KindOpen, event.KindConnect, event.KindClose, event.KindExec)
	defer bus.Unsubscribe(sub)
	env := &probe.Env{
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
		Bus:        bus,
		Procs:      proc.NewCache(32768, proc.NewCgroups("/sys/fs/cgroup", 4096)),
		LabelLimit: 100,
	}
	ocfg := open.DefaultConfig()
	ocfg.PathPrefixes = []string{dir + "/", "/proc/self/stat"}
	probes := []probe.Probe{process.New(process.DefaultConfig()), open.New(ocfg), tcp.New(tcp.DefaultConfig())}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		for _, p := range probes {
			p.Close()
		}
	}()
	began := time.Now()
	for _, p := range probes {
		if err := p.Start(env); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Run(ctx) }()
	}

	// The shell waits for a line, so its own identity can be read while it
	// lives; each child prints its own /proc/self/stat while it lives.
	// "exit 0" last keeps dash from exec'ing python in place of itself.
	script := fmt.Sprintf(`read go; cat %s /proc/self/stat; %s -c 'import socket; print(open("/proc/self/stat").read(), flush=True); s = socket.create_connection(("127.0.0.1", %d)); s.sendall(b"x"); s.close()'; exit 0`,
		watched, python, port)
	sh := exec.Command("/bin/sh", "-c", script)
	stdin, _ := sh.StdinPipe()
	stdout, _ := sh.StdoutPipe()
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("probes loaded in %v", time.Since(began))
	shStat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sh.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	shell := parseStat(t, string(shStat))
	fmt.Fprintln(stdin, "go")
	var children []statOf
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, ") ") && strings.IndexByte(line, '(') > 0 {
			children = append(children, parseStat(t, line))
		}
	}
	if err := sh.Wait(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	if len(children) != 2 {
		t.Fatalf("want the stat lines of cat and python, got %d", len(children))
	}
	cat, py := children[0], children[1]
	for _, c := range children {
		if c.ppid != shell.pid {
			t.Fatalf("/proc says %s (pid %d) has parent %d, not the shell %d", c.comm, c.pid, c.ppid, shell.pid)
		}
	}

	// What each child must produce: cat opens the watched file and its stat
	// file; python opens its stat file, connects and closes.
	type want struct {
		child statOf
		kind  event.Kind
		what  string
	}
	wants := []want{
		{cat, event.KindOpen, watched}, {cat, event.KindOpen, "/proc/self/stat"},
		{py, event.KindOpen, "/proc/self/stat"}, {py, event.KindConnect, ""}, {py, event.KindClose, ""},
	}
	t.Logf("shell %+v, children %+v", shell, children)
	seen := make([]bool, len(wants))
	waited := time.Now()
	defer func() { t.Logf("events checked after %v", time.Since(waited)) }()
	deadline := time.After(10 * time.Second)
	for n := 0; n < len(wants); {
		var ev event.Event
		select {
		case ev = <-sub.C():
		case <-deadline:
			for i, w := range wants {
				if !seen[i] {
					t.Errorf("no %s event %q from %s (pid %d)", w.kind, w.what, w.child.comm, w.child.pid)
				}
			}
			return
		}
		h := ev.EventHeader()
		var child *statOf
		for i := range children {
			if children[i].pid == h.PID {
				child = &children[i]
			}
		}
		if child == nil || ev.EventKind() == event.KindExec {
			continue
		}
		what := ""
		if o, ok := ev.(*event.Open); ok {
			what = o.Path
		}
		if o, ok := ev.(*event.TCPConnect); ok && o.DPort != uint16(port) {
			continue
		}
		if o, ok := ev.(*event.TCPClose); ok && o.DPort != uint16(port) {
			continue
		}
		// Every event of the child, wanted or not, must be right.
		if h.PPID != shell.pid || h.ParentComm != shell.comm || h.StartNS/clockTick != child.startTick || h.Comm != child.comm {
			t.Errorf("%s event of %s (pid %d): ppid %d parent_comm %q start %d ns (tick %d) comm %q; want ppid %d parent_comm %q start tick %d comm %q",
				ev.EventKind(), child.comm, child.pid, h.PPID, h.ParentComm, h.StartNS, h.StartNS/clockTick, h.Comm,
				shell.pid, shell.comm, child.startTick, child.comm)
		}
		for i, w := range wants {
			if !seen[i] && w.child.pid == h.PID && w.kind == ev.EventKind() && (w.what == "" || w.what == what) {
				seen[i] = true
				n++
				break
			}
		}
	}
}
