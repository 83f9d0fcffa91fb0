package eventrules

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/probe/filechange"
	"github.com/vigilproject/vigil/internal/proc"
)

// The vocabulary both the random rules and the corpus draw from, so that
// rules match some events and miss most.
var (
	vNames   = []string{"ls", "bash", "sh", "curl", "wget", "nc", "python3", "cat", "dpkg", "apt-get", "go", "gcc", "tool3", "svc1", "nginx", "x", ""}
	vExeDirs = []string{"/usr/bin/", "/bin/", "/tmp/", "/var/tmp/", "/dev/shm/", "/opt/app3/", "/opt/app", "/memfd:", "/tmp/go-build123/b001/", ""}
	vSuffix  = []string{" (deleted)", ".sh", "/bin4", ".pub", "_key", "", "x"}
	vArgs    = []string{"-l", "--flag3", "--x", "-c", "/srv", "", "--flag13", "-e", "sh"}
	vPaths   = []string{"/etc/shadow", "/etc/sudoers", "/etc/sudoers.d/README", "/root/.ssh/id_rsa", "/root/.ssh/id_rsa.pub", "/home/u/.ssh/id_ed25519",
		"/etc/ssh/ssh_host_rsa_key", "/usr/lib/libc.so.6", "/tmp/x", "/opt/app1/conf", "", "relative/path", "/etc/passwd", "/etc"}
	vAddrs = []string{"127.0.0.1", "10.0.0.1", "8.8.8.8", "::1", "", "192.168.1.5"}
	// file_change paths: the trees the default pack watches, and others.
	vChanged = []string{"/root/.ssh/authorized_keys", "/home/u/.ssh/authorized_keys2", "/var/log/syslog", "/var/log/auth.log",
		"/etc/ld.so.preload", "/etc/cron.d/job", "/etc/crontab", "/var/spool/cron/crontabs/root", "/etc/systemd/system/x.service",
		"/usr/lib/systemd/user/y.timer", "/tmp/x", "/usr/bin/sh4", "/etc/passwd", ""}
	vOps     = []string{"open_write", "unlink", "rename", "truncate", "chmod", "chown", "link", "symlink", "mkdir"}
	vParents = []struct {
		pid  uint32
		comm string
		exe  string
	}{{500, "sshd", "/usr/sbin/sshd"}, {600, "bash", "/usr/bin/bash"}, {700, "nginx", "/usr/sbin/nginx"}, {800, "dpkg", "/usr/bin/dpkg"},
		{900, "go", "/usr/local/go/bin/go"}, {950, "containerd-shim", "/usr/bin/containerd-shim-runc-v2"}}
)

func pickOne[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// equivProcs is a process cache with several parents (a shell, a web
// server, dpkg, the go tool, ...) under systemd; dpkg's children are
// grandchildren of apt-get.
func equivProcs() *proc.Cache {
	c := proc.NewCache(65536, nil)
	c.Exec(proc.Process{PID: 1, StartNS: 1, Comm: "systemd", Exe: "/usr/lib/systemd/systemd"})
	c.Exec(proc.Process{PID: 400, PPID: 1, StartNS: 2, Comm: "apt-get", Exe: "/usr/bin/apt-get"})
	for _, p := range vParents {
		ppid := uint32(1)
		if p.comm == "dpkg" {
			ppid = 400
		}
		c.Exec(proc.Process{PID: p.pid, PPID: ppid, StartNS: 3, Comm: p.comm, Exe: p.exe, Args: []string{p.comm}})
	}
	return c
}

// equivCorpus is a stream of generated exec, open, connect, exit,
// file_change and http events (processes 1000-1199 under the parents of equivProcs) followed
// by one exec event per process running on this machine, as read from
// /proc.
func equivCorpus(r *rand.Rand, n int, procs *proc.Cache) []event.Event {
	var out []event.Event
	at := t0
	for i := range n {
		at = at.Add(time.Duration(r.IntN(50)) * time.Millisecond)
		pid := uint32(1000 + r.IntN(200))
		par := pickOne(r, vParents)
		name := pickOne(r, vNames)
		exe := pickOne(r, vExeDirs) + name + pickOne(r, vSuffix)
		h := event.Header{Time: at, Process: event.Process{PID: pid, PPID: par.pid, ParentComm: par.comm, Comm: name, UID: uint32(pickOne(r, []int{0, 1000})),
			StartNS: uint64(pid) * 1000}}
		if r.IntN(4) == 0 {
			h.Container, h.Runtime = "abc123def4567890abc123def4567890", "containerd"
		}
		if r.IntN(3) > 0 {
			h.Exe = exe
		}
		switch i % 9 {
		case 0, 1, 2:
			h.Kind = event.KindExec
			ev := &event.Exec{Header: h, Filename: exe}
			for range r.IntN(4) {
				ev.Args = append(ev.Args, pickOne(r, vArgs))
			}
			if r.IntN(5) == 0 {
				ev.Ret, ev.Error = -2, "ENOENT"
			}
			procs.Exec(proc.Process{PID: pid, PPID: par.pid, StartNS: h.StartNS, Comm: name, Exe: exe, Args: ev.Args})
			out = append(out, ev)
		case 3, 4:
			h.Kind = event.KindOpen
			ev := &event.Open{Header: h, Path: pickOne(r, vPaths), Syscall: "openat", FD: 3, Ret: 3}
			if r.IntN(5) == 0 {
				ev.FD, ev.Ret, ev.Error = -1, -13, "EACCES"
			}
			out = append(out, ev)
		case 5:
			h.Kind = event.KindConnect
			ev := &event.TCPConnect{Header: h, TCPConn: event.TCPConn{Family: "ipv4", DAddr: pickOne(r, vAddrs), DPort: uint16(pickOne(r, []int{443, 22, 4444}))}}
			if r.IntN(3) == 0 {
				ev.Error, ev.Errno = "ECONNREFUSED", 111
			}
			out = append(out, ev)
		case 6:
			h.Kind = event.KindExit
			out = append(out, &event.Exit{Header: h})
		case 7:
			h.Kind = filechange.KindFileChange
			ev := &filechange.FileChange{Header: h, Op: pickOne(r, vOps), Path: pickOne(r, vChanged), Flags: uint32(pickOne(r, []int{1, 513, 577}))}
			if ev.Op == "rename" || ev.Op == "link" {
				ev.NewPath = pickOne(r, vChanged)
			}
			if ev.Op == "chmod" {
				ev.Mode = uint32(pickOne(r, []int{0o644, 0o4755, 0o2755}))
				ev.Setuid, ev.Setgid = ev.Mode&0o4000 != 0, ev.Mode&0o2000 != 0
			}
			if r.IntN(5) == 0 {
				ev.Ret, ev.Error = -13, "EACCES"
			}
			out = append(out, ev)
		case 8:
			h.Kind = httpflow.KindHTTP
			ev := &httpflow.Exchange{Header: h, Side: pickOne(r, []string{"server", "client"}), Method: "GET", Path: "/x",
				Status: pickOne(r, []int{200, 404, 500, 503}), RemoteAddr: pickOne(r, append([]string{"169.254.169.254"}, vAddrs...)),
				Host: pickOne(r, []string{"example.com", "169.254.169.254", "metadata.google.internal", ""}), Service: name}
			out = append(out, ev)
		}
	}
	// Real processes: their comm, executable and argv as /proc shows them.
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		comm, err1 := os.ReadFile(d + "/comm")
		cmdline, err2 := os.ReadFile(d + "/cmdline")
		if err1 != nil || err2 != nil {
			continue
		}
		exe, _ := os.Readlink(d + "/exe")
		var args []string
		if s := strings.TrimRight(string(cmdline), "\x00"); s != "" {
			args = strings.Split(s, "\x00")
		}
		at = at.Add(time.Millisecond)
		out = append(out, &event.Exec{Header: event.Header{Kind: event.KindExec, Time: at, Process: event.Process{
			PID: uint32(pid), PPID: 1, Comm: strings.TrimSpace(string(comm)), Exe: exe}}, Filename: exe, Args: args})
	}
	return out
}

// randomCond writes a condition for kind k from the tests rules use,
// joined with &&, || and !, nested up to depth.
func randomCond(r *rand.Rand, k event.Kind, depth int) string {
	if depth > 0 && r.IntN(3) > 0 {
		switch r.IntN(5) {
		case 0, 1:
			return "(" + randomCond(r, k, depth-1) + " && " + randomCond(r, k, depth-1) + ")"
		case 2, 3:
			return "(" + randomCond(r, k, depth-1) + " || " + randomCond(r, k, depth-1) + ")"
		default:
			return "!(" + randomCond(r, k, depth-1) + ")"
		}
	}
	q := strconv.Quote
	list := func(xs []string) string {
		var parts []string
		for range 1 + r.IntN(4) {
			parts = append(parts, q(pickOne(r, xs)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	common := []func() string{
		func() string { return "proc.name == " + q(pickOne(r, vNames)) },
		func() string { return "proc.comm == " + q(pickOne(r, vNames)) },
		func() string { return "proc.name in " + list(vNames) },
		func() string { return "proc.name in bench_names" },
		func() string { return "proc.exe.startsWith(" + q(pickOne(r, vExeDirs)) + ")" },
		func() string { return "proc.exe.endsWith(" + q(pickOne(r, vSuffix)) + ")" },
		func() string { return "container.present" },
		func() string { return "parent.name == " + q(pickOne(r, vParents).comm) },
		func() string { return "parent.name in " + list([]string{"nginx", "dpkg", "bash", "go", "x"}) },
		func() string { return "proc.uid != 0" },
		func() string { return `"dpkg" in proc.ancestors.name` },
		func() string { return `proc.ancestors.name.exists(n, n == "apt-get")` },
		func() string { return "proc.exe == " + q(pickOne(r, vExeDirs)+pickOne(r, vNames)) },
	}
	var own []func() string
	switch k {
	case event.KindExec:
		own = []func() string{
			func() string { return "evt.filename.startsWith(" + q(pickOne(r, vExeDirs)) + ")" },
			func() string { return "evt.filename.endsWith(" + q(pickOne(r, vSuffix)) + ")" },
			func() string { return q(pickOne(r, vArgs)) + " in evt.args" },
			func() string { return "evt.ret == 0" },
			func() string { return `evt.args.exists(a, a.startsWith("--"))` },
			func() string { return "basename(evt.filename) == " + q(pickOne(r, vNames)) },
			func() string { return `evt.filename.matches("^/tmp/[a-z0-9-]+/")` },
			func() string {
				return "evt.filename in " + list([]string{"/usr/bin/ls", "/bin/sh", "/tmp/x", "/usr/bin/curl"})
			},
		}
	case event.KindOpen:
		own = []func() string{
			func() string { return "evt.path == " + q(pickOne(r, vPaths)) },
			func() string { return "evt.path in " + list(vPaths) },
			func() string {
				return "evt.path.startsWith(" + q(pickOne(r, []string{"/etc/", "/root/.ssh/", "/home/", "/tmp/", "/etc/sudoers", ""})) + ")"
			},
			func() string { return "evt.path.endsWith(" + q(pickOne(r, vSuffix)) + ")" },
			func() string { return "evt.ret >= 0" },
		}
	case event.KindConnect:
		own = []func() string{
			func() string { return "!is_loopback(evt.daddr)" },
			func() string { return "evt.daddr == " + q(pickOne(r, vAddrs)) },
			func() string { return "evt.dport == 4444" },
			func() string { return `evt.error != ""` },
		}
	}
	if r.IntN(2) == 0 {
		return pickOne(r, own)()
	}
	return pickOne(r, common)()
}

// randomRules writes n rules over exec, open and connect events, some with
// exceptions.
func randomRules(r *rand.Rand, n int) string {
	var sb strings.Builder
	sb.WriteString("- list: bench_names\n  items: [curl, wget, nc, python3, sh, bash]\n")
	kinds := []event.Kind{event.KindExec, event.KindExec, event.KindOpen, event.KindConnect}
	for i := range n {
		k := pickOne(r, kinds)
		var parts []string
		for range 1 + r.IntN(3) {
			parts = append(parts, randomCond(r, k, r.IntN(3)))
		}
		fmt.Fprintf(&sb, "- rule: R%d\n  event: %s\n  condition: %s\n  output: '%%{proc.name} %%{proc.pid}'\n", i, k, yamlQuote(strings.Join(parts, " && ")))
		if r.IntN(4) == 0 {
			fmt.Fprintf(&sb, "  exceptions:\n    - condition: %s\n", yamlQuote(randomCond(r, k, 1)))
		}
	}
	return sb.String()
}

func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// runBoth feeds the corpus to an indexed and a linear engine over the same
// ruleset and requires the same alerts, in the same order, and the same
// per-rule match, exception and error counts. It returns the alerts and
// how many rule evaluations the index saved.
func runBoth(t *testing.T, rs *Ruleset, procs *proc.Cache, corpus []event.Event) (alerts *recorder, skipped int) {
	t.Helper()
	engines := [2]*Engine{}
	recs := [2]*recorder{}
	for i := range engines {
		recs[i] = &recorder{}
		engines[i] = NewEngine(procs, recs[i])
		engines[i].now = func() time.Time { return t0 }
		engines[i].Install(rs)
	}
	engines[1].linear = true
	for _, ev := range corpus {
		for _, e := range engines {
			e.Handle(ev)
		}
		if ix := engines[0].index[ev.EventKind()]; ix != nil {
			c := newCtx(ev, procs, rs.Opts.AncestryDepth)
			skipped += ix.n - len(ix.candidates(c, &candScratch{}))
		}
	}
	for _, e := range engines {
		e.Flush()
	}
	a, b := recs[0].alerts, recs[1].alerts
	if len(a) != len(b) {
		t.Fatalf("indexed engine sent %d alerts, linear %d", len(a), len(b))
	}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("alert %d differs:\nindexed %v\nlinear  %v", i, a[i], b[i])
		}
	}
	for _, r := range rs.Rules {
		x, y := engines[0].counters[r.Name], engines[1].counters[r.Name]
		for _, p := range [][2]float64{
			{testutil.ToFloat64(x.matches), testutil.ToFloat64(y.matches)},
			{testutil.ToFloat64(x.excepted), testutil.ToFloat64(y.excepted)},
			{testutil.ToFloat64(x.errors), testutil.ToFloat64(y.errors)},
		} {
			if p[0] != p[1] {
				t.Fatalf("rule %s (%s): indexed %v, linear %v (matches, excepted, errors)", r.Name, r.condSrc, p[0], p[1])
			}
		}
	}
	return recs[0], skipped
}

// TestIndexEquivalentToLinearDefaultPack: the default pack over the corpus
// gives the same alerts with and without the index.
func TestIndexEquivalentToLinearDefaultPack(t *testing.T) {
	opts := DefaultOptions()
	opts.ReorderWindow = 0
	opts.NoSuppression = true
	rs, ds := LoadFiles(defaultPack(t), opts)
	if rs == nil {
		t.Fatal(ds)
	}
	procs := equivProcs()
	corpus := equivCorpus(rand.New(rand.NewPCG(1, 2)), 20000, procs)
	alerts, skipped := runBoth(t, rs, procs, corpus)
	// The corpus exercises the pack: execs from /tmp, shells under nginx,
	// package managers in containers, credential reads.
	for _, r := range rs.Rules {
		if r.threshold == nil && len(alerts.named(r.Name)) == 0 {
			t.Errorf("rule %s never matched the corpus: the comparison proves nothing for it", r.Name)
		}
	}
	if skipped == 0 {
		t.Error("the index skipped no rule")
	}
	t.Logf("%d events, %d alerts, %d rule evaluations skipped by the index", len(corpus), len(alerts.alerts), skipped)
}

// TestIndexEquivalentToLinearRandom: randomised rule sets (equality, lists,
// prefixes, suffixes, list membership, booleans, parent and ancestry tests
// under &&, || and !, with exceptions) give the same alerts with and
// without the index.
func TestIndexEquivalentToLinearRandom(t *testing.T) {
	procs := equivProcs()
	corpus := equivCorpus(rand.New(rand.NewPCG(3, 4)), 2000, procs)
	sets := 12
	if testing.Short() {
		sets = 4
	}
	var totalAlerts, totalSkipped int
	for seed := range sets {
		r := rand.New(rand.NewPCG(uint64(seed), 99))
		src := randomRules(r, 50)
		opts := DefaultOptions()
		opts.ReorderWindow = 0
		opts.NoSuppression = true
		rs, ds := Compile(fmt.Sprintf("random%d.yaml", seed), []byte(src), opts)
		if rs == nil {
			t.Fatalf("seed %d: %v\n%s", seed, ds, src)
		}
		alerts, skipped := runBoth(t, rs, procs, corpus)
		totalAlerts += len(alerts.alerts)
		totalSkipped += skipped
	}
	if totalAlerts == 0 || totalSkipped == 0 {
		t.Fatalf("%d alerts, %d evaluations skipped: the comparison proves nothing", totalAlerts, totalSkipped)
	}
	t.Logf("%d rule sets x %d events: %d alerts, %d rule evaluations skipped by the index", sets, len(corpus), totalAlerts, totalSkipped)
}

// TestAffixSet compares prefix and suffix lookups with a brute-force scan.
func TestAffixSet(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	alpha := []string{"/", "a", "b", "/a", "/tmp/", "ab", ""}
	word := func(n int) string {
		var sb strings.Builder
		for range r.IntN(n) {
			sb.WriteString(pickOne(r, alpha))
		}
		return sb.String()
	}
	for range 200 {
		b := affixBuilder{}
		var keys []string
		for i := range 1 + r.IntN(12) {
			k := word(4)
			keys = append(keys, k)
			b[k] = appendID(b[k], int32(i))
		}
		set := b.build()
		for range 50 {
			s := word(6)
			sc := &candScratch{}
			sc.begin(len(keys))
			set.match(s, sc)
			got := slices.Clone(sc.out)
			slices.Sort(got)
			var want []int32
			for i, k := range keys {
				if strings.HasPrefix(s, k) {
					want = append(want, int32(i))
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("keys %q, %q: got %v, want %v", keys, s, got, want)
			}
		}
	}
}
