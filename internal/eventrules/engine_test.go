package eventrules

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilproject/vigil/internal/alert"
	"github.com/vigilproject/vigil/internal/event"
)

type recorder struct {
	mu     sync.Mutex
	alerts []alert.Alert
}

func (r *recorder) Send(_ string, as []alert.Alert) {
	r.mu.Lock()
	r.alerts = append(r.alerts, as...)
	r.mu.Unlock()
}

func (r *recorder) named(name string) []alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []alert.Alert
	for _, a := range r.alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func hdr(kind event.Kind, pid uint32, at time.Duration) event.Header {
	return event.Header{Kind: kind, Time: t0.Add(at), Process: event.Process{PID: pid, PPID: 1, Comm: "cat", Exe: "/usr/bin/cat", StartNS: uint64(pid) * 1000}}
}

func execEv(pid uint32, at time.Duration, file string) *event.Exec {
	return &event.Exec{Header: hdr(event.KindExec, pid, at), Filename: file, Args: []string{file}}
}

func openEv(pid uint32, at time.Duration, path string) *event.Open {
	return &event.Open{Header: hdr(event.KindOpen, pid, at), Path: path, Syscall: "openat", FD: 3, Ret: 3}
}

func connectEv(pid uint32, at time.Duration, daddr string, failed bool) *event.TCPConnect {
	c := &event.TCPConnect{Header: hdr(event.KindConnect, pid, at), TCPConn: event.TCPConn{Family: "ipv4", DAddr: daddr, DPort: 443}}
	if failed {
		c.Error, c.Errno = "ECONNREFUSED", 111
	}
	return c
}

func exitEv(pid uint32, at time.Duration) *event.Exit {
	return &event.Exit{Header: hdr(event.KindExit, pid, at)}
}

// newTestEngine loads the default pack with a clock at t0+clock.
func newTestEngine(t *testing.T, mod func(*Options)) (*Engine, *recorder, *time.Duration) {
	t.Helper()
	opts := DefaultOptions()
	opts.ReorderWindow = 0
	opts.Host = "node1"
	if mod != nil {
		mod(&opts)
	}
	rs, ds := LoadFiles(defaultPack(t), opts)
	if rs == nil {
		t.Fatalf("default pack: %v", ds)
	}
	rec := &recorder{}
	e := NewEngine(nil, rec)
	clock := new(time.Duration)
	e.now = func() time.Time { return t0.Add(*clock) }
	e.Install(rs)
	return e, rec, clock
}

func TestSingleRuleAlertAndLabels(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	e.Handle(execEv(10, 0, "/usr/bin/true"))
	if n := len(rec.named("ExecFromTempOrMemory")); n != 0 {
		t.Fatalf("exec of /usr/bin/true alerted %d times", n)
	}
	e.Handle(execEv(11, 0, "/tmp/payload"))
	got := rec.named("ExecFromTempOrMemory")
	if len(got) != 1 {
		t.Fatalf("want 1 alert, got %d", len(got))
	}
	a := got[0]
	want := map[string]string{"alertname": "ExecFromTempOrMemory", "rule": "ExecFromTempOrMemory", "severity": "warning", "host": "node1"}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if _, ok := a.Labels["group"]; !ok {
		t.Errorf("rule with group_by has no group label: %v", a.Labels)
	}
	if !strings.HasPrefix(a.Annotations["summary"], "/tmp/payload executed as pid 11 by ") {
		t.Errorf("summary = %q", a.Annotations["summary"])
	}
	if a.Annotations["pid"] != "11" || !strings.Contains(a.Annotations["event"], `"filename":"/tmp/payload"`) {
		t.Errorf("annotations = %v", a.Annotations)
	}
	if !a.StartsAt.Equal(t0) {
		t.Errorf("startsAt = %v, want event time %v", a.StartsAt, t0)
	}
}

func TestDedupCountsSuppressedRepeats(t *testing.T) {
	e, rec, clock := newTestEngine(t, nil)
	for i := range 3 {
		e.Handle(execEv(uint32(20+i), time.Duration(i)*time.Second, "/tmp/same"))
	}
	if n := len(rec.named("ExecFromTempOrMemory")); n != 1 {
		t.Fatalf("want 1 alert inside the suppression window, got %d", n)
	}
	if v := testutil.ToFloat64(e.m.suppressed.WithLabelValues("ExecFromTempOrMemory")); v != 2 {
		t.Fatalf("suppressed counter = %v, want 2", v)
	}
	*clock = 61 * time.Second // the rule's window is 1m
	e.Tick()
	got := rec.named("ExecFromTempOrMemory")
	if len(got) != 2 || got[1].Annotations["suppressed_repeats"] != "2" {
		t.Fatalf("want an update with suppressed_repeats=2, got %d alerts: %v", len(got), got[len(got)-1].Annotations)
	}
	if got[0].Labels["group"] != got[1].Labels["group"] {
		t.Fatal("the update must have the labels of the original alert")
	}
	// A different group is a different alert.
	e.Handle(execEv(30, 62*time.Second, "/tmp/other"))
	if n := len(rec.named("ExecFromTempOrMemory")); n != 3 {
		t.Fatalf("a new group must alert; have %d alerts", n)
	}
}

func TestSequenceInsideOutsideWindowUntilAndExit(t *testing.T) {
	const rule = "SensitiveReadThenConnect"
	cases := []struct {
		name   string
		events []event.Event
		alerts int
		reason string // eviction reason expected
	}{
		{"inside window", []event.Event{openEv(100, 0, "/etc/shadow"), connectEv(100, 9*time.Second, "192.0.2.2", false)}, 1, ""},
		{"outside window", []event.Event{openEv(100, 0, "/etc/shadow"), connectEv(100, 11*time.Second, "192.0.2.2", false)}, 0, "window"},
		{"until cancels", []event.Event{openEv(100, 0, "/etc/shadow"), execEv(100, time.Second, "/usr/bin/curl"), connectEv(100, 2*time.Second, "192.0.2.2", false)}, 0, "until"},
		{"exit ends state", []event.Event{openEv(100, 0, "/etc/shadow"), exitEv(100, time.Second), connectEv(100, 2*time.Second, "192.0.2.2", false)}, 0, "exit"},
		{"other process", []event.Event{openEv(100, 0, "/etc/shadow"), connectEv(101, time.Second, "192.0.2.2", false)}, 0, ""},
		{"loopback", []event.Event{openEv(100, 0, "/etc/shadow"), connectEv(100, time.Second, "127.0.0.1", false)}, 0, ""},
		{"not sensitive", []event.Event{openEv(100, 0, "/etc/hostname"), connectEv(100, time.Second, "192.0.2.2", false)}, 0, ""},
		{"ssh key", []event.Event{openEv(100, 0, "/root/.ssh/id_ed25519"), connectEv(100, time.Second, "192.0.2.2", false)}, 1, ""},
		{"ssh public key", []event.Event{openEv(100, 0, "/root/.ssh/id_ed25519.pub"), connectEv(100, time.Second, "192.0.2.2", false)}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, rec, clock := newTestEngine(t, nil)
			for _, ev := range tc.events {
				*clock = ev.EventHeader().Time.Sub(t0)
				e.Handle(ev)
			}
			got := rec.named(rule)
			if len(got) != tc.alerts {
				t.Fatalf("alerts = %d, want %d", len(got), tc.alerts)
			}
			if tc.alerts == 1 {
				if s := got[0].Annotations["summary"]; !strings.Contains(s, "then connected to 192.0.2.2:443") || !strings.Contains(s, "(pid 100) read /") {
					t.Errorf("summary = %q", s)
				}
				if ev := got[0].Annotations["events"]; !strings.Contains(ev, `"kind":"open"`) || !strings.Contains(ev, `"kind":"connect"`) {
					t.Errorf("events annotation = %s", ev)
				}
			}
			if tc.reason != "" {
				if v := testutil.ToFloat64(e.m.evictions.WithLabelValues(rule, tc.reason)); v != 1 {
					t.Errorf("evictions{reason=%s} = %v, want 1", tc.reason, v)
				}
			}
			if e.seqTotal.Load() != 0 && tc.alerts == 1 {
				t.Errorf("state left after completion: %d", e.seqTotal.Load())
			}
		})
	}
}

func TestSequenceToleratesReorder(t *testing.T) {
	e, rec, clock := newTestEngine(t, func(o *Options) { o.ReorderWindow = 50 * time.Millisecond })
	// The connect (later in time) arrives first, as it can from another CPU.
	*clock = 20 * time.Millisecond
	e.Handle(connectEv(100, 10*time.Millisecond, "192.0.2.2", false))
	e.Handle(openEv(100, 5*time.Millisecond, "/etc/shadow"))
	if n := len(rec.named("SensitiveReadThenConnect")); n != 0 {
		t.Fatalf("released before the reorder window: %d alerts", n)
	}
	*clock = 100 * time.Millisecond
	e.Tick()
	if n := len(rec.named("SensitiveReadThenConnect")); n != 1 {
		t.Fatalf("alerts = %d, want 1 after reordering", n)
	}
}

func TestSequenceStateBounds(t *testing.T) {
	e, _, _ := newTestEngine(t, func(o *Options) { o.MaxKeysPerRule = 10; o.MaxKeysTotal = 15 })
	for i := range 25 {
		e.Handle(openEv(uint32(1000+i), time.Duration(i)*time.Millisecond, "/etc/shadow"))
	}
	if n := e.seqTotal.Load(); n != 10 {
		t.Fatalf("states = %d, want the per-rule bound 10", n)
	}
	if v := testutil.ToFloat64(e.m.evictions.WithLabelValues("SensitiveReadThenConnect", "capacity")); v != 15 {
		t.Fatalf("capacity evictions = %v, want 15", v)
	}
	// The oldest were evicted: the newest key still completes.
	e.Handle(connectEv(1024, 30*time.Millisecond, "192.0.2.2", false))
	if n := e.seqTotal.Load(); n != 9 {
		t.Fatalf("states after completion = %d, want 9", n)
	}
}

func TestThresholdBurst(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	for i := range 19 {
		e.Handle(connectEv(200, time.Duration(i)*100*time.Millisecond, "127.0.0.1", true))
	}
	if n := len(rec.named("PortScanBurst")); n != 0 {
		t.Fatalf("19 failures alerted")
	}
	e.Handle(connectEv(200, 1900*time.Millisecond, "127.0.0.1", true))
	if n := len(rec.named("PortScanBurst")); n != 1 {
		t.Fatalf("20 failures in 2s: %d alerts, want 1", n)
	}
	// Slow failures (one per second) never reach 20 within 5s.
	for i := range 40 {
		e.Handle(connectEv(201, 10*time.Second+time.Duration(i)*time.Second, "127.0.0.1", true))
	}
	if n := len(rec.named("PortScanBurst")); n != 1 {
		t.Fatalf("slow failures alerted: %d alerts", n)
	}
	// Successful connects do not count.
	for i := range 30 {
		e.Handle(connectEv(202, 60*time.Second+time.Duration(i)*time.Millisecond, "127.0.0.1", false))
	}
	if n := len(rec.named("PortScanBurst")); n != 1 {
		t.Fatalf("successful connects alerted")
	}
}

func TestReloadKeepsUnchangedSequenceState(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	e.Handle(openEv(100, 0, "/etc/shadow"))
	rs, ds := LoadFiles(defaultPack(t), e.Ruleset().Opts)
	if rs == nil {
		t.Fatal(ds)
	}
	e.Install(rs)
	e.Handle(connectEv(100, time.Second, "192.0.2.2", false))
	if n := len(rec.named("SensitiveReadThenConnect")); n != 1 {
		t.Fatalf("state lost over a reload of unchanged rules: %d alerts", n)
	}
}

// Probes report start times exactly (kernel) or at tick precision (/proc):
// proc.id keys the sequence the same either way.
func TestSequenceKeyToleratesStartTimePrecision(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	o := openEv(300, 0, "/etc/shadow")
	o.StartNS = 123_456_789_012 // exact
	c := connectEv(300, time.Second, "192.0.2.2", false)
	c.StartNS = 123_450_000_000 // the same start from /proc, in 10ms ticks
	e.Handle(o)
	e.Handle(c)
	if n := len(rec.named("SensitiveReadThenConnect")); n != 1 {
		t.Fatalf("alerts = %d, want 1", n)
	}
	o2 := openEv(301, 2*time.Second, "/etc/shadow")
	o2.StartNS = 5_000_000_000
	c2 := connectEv(301, 3*time.Second, "192.0.2.2", false)
	c2.StartNS = 6_000_000_000 // pid reused by another process
	e.Handle(o2)
	e.Handle(c2)
	if n := len(rec.named("SensitiveReadThenConnect")); n != 1 {
		t.Fatalf("a reused pid completed the sequence")
	}
}

func TestLongSuppressionReportsEvery30s(t *testing.T) {
	src := "- rule: A\n  event: exec\n  condition: evt.filename == \"/x\"\n  suppress: 10m\n"
	opts := DefaultOptions()
	opts.ReorderWindow = 0
	rs, ds := Compile("a.yaml", []byte(src), opts)
	if rs == nil {
		t.Fatal(ds)
	}
	rec := &recorder{}
	e := NewEngine(nil, rec)
	clock := time.Duration(0)
	e.now = func() time.Time { return t0.Add(clock) }
	e.Install(rs)
	for i := range 120 { // one match a second for 2 minutes, ticking every 20ms
		clock = time.Duration(i) * time.Second
		e.Handle(execEv(uint32(i+1), clock, "/x"))
		for j := range 50 {
			clock = time.Duration(i)*time.Second + time.Duration(j)*20*time.Millisecond
			e.Tick()
		}
	}
	got := rec.named("A")
	// The first alert, then an update every 30s: at 30, 60, 90 s.
	if len(got) != 4 {
		t.Fatalf("%d notices, want 4", len(got))
	}
	if got[3].Annotations["suppressed_repeats"] != "90" {
		t.Fatalf("last update reports %s repeats, want 90", got[3].Annotations["suppressed_repeats"])
	}
}

func TestSequenceOutputNamesFailedConnect(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	e.Handle(openEv(400, 0, "/etc/sudoers"))
	e.Handle(connectEv(400, time.Second, "192.0.2.9", true))
	got := rec.named("SensitiveReadThenConnect")
	if len(got) != 1 || !strings.HasSuffix(got[0].Annotations["summary"], "read /etc/sudoers then connected to 192.0.2.9:443 (failed: ECONNREFUSED)") {
		t.Fatalf("alerts = %v", got)
	}
}

// An until event that happened before the first step but arrived after it
// (another ring buffer, later than the reorder window) does not cancel.
func TestLateUntilDoesNotCancel(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	e.Handle(openEv(500, 100*time.Millisecond, "/etc/shadow"))
	e.Handle(execEv(500, 0, "/bin/bash")) // the process's own exec, delivered late
	e.Handle(connectEv(500, time.Second, "192.0.2.2", false))
	if n := len(rec.named("SensitiveReadThenConnect")); n != 1 {
		t.Fatalf("alerts = %d, want 1", n)
	}
	if v := testutil.ToFloat64(e.m.late); v != 1 {
		t.Fatalf("late events = %v, want 1", v)
	}
}

// A short-lived process is gone from the cache (or never made it there) by
// the time its open is evaluated: the parent comes from what the kernel
// filled in the event, not "parent )".
func TestParentFallsBackToKernelContext(t *testing.T) {
	e, rec, _ := newTestEngine(t, nil)
	ev := openEv(31, 0, "/etc/shadow")
	ev.Comm, ev.Exe, ev.PPID, ev.ParentComm = "cp", "", 30, "bash"
	e.Handle(ev)
	got := rec.named("SensitiveFileRead")
	if len(got) != 1 {
		t.Fatalf("want 1 SensitiveFileRead alert, got %d", len(got))
	}
	if s := got[0].Annotations["summary"]; !strings.Contains(s, "parent bash)") {
		t.Errorf("summary %q does not name the parent bash", s)
	}
}
