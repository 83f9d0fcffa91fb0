package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// harness runs the real probe in the test process.
type harness struct {
	p      *Probe
	reg    *prometheus.Registry
	mu     sync.Mutex
	events []event.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func startProbe(t *testing.T, cfg *Config, disabled ...kernel.HookKind) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to load BPF programs")
	}
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1<<16)
	h := &harness{p: New(cfg), reg: prometheus.NewRegistry(), done: make(chan struct{})}
	env := &probe.Env{
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:    h.reg,
		Bus:           bus,
		Procs:         proc.NewCache(4096, proc.NewCgroups("/sys/fs/cgroup", 1024)),
		LabelLimit:    1000,
		DisabledHooks: disabled,
	}
	if err := h.p.Start(env); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("kernel test: loading BPF not permitted: %v", err)
		}
		t.Fatalf("start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		_ = h.p.Run(ctx)
	}()
	go func() {
		for e := range sub.C() {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-h.done
		bus.Unsubscribe(sub)
		_ = h.p.Close()
	})
	return h
}

// find waits for events matching pred until want are found or the timeout.
func (h *harness) find(t *testing.T, want int, timeout time.Duration, pred func(event.Event) bool) []event.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var out []event.Event
		h.mu.Lock()
		for _, e := range h.events {
			if pred(e) {
				out = append(out, e)
			}
		}
		h.mu.Unlock()
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric sums the samples of a family whose labels include all of want.
func (h *harness) metric(t *testing.T, name string, want map[string]string) (float64, uint64) {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				sum += m.GetHistogram().GetSampleSum()
				count += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return sum, count
}

func myComm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// randomLoopback returns an address in 127/8 that no other test uses, so
// per-remote metrics can be asserted exactly.
func randomLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(250)+1, rand.IntN(250)+1)
}

// exchange makes one connection from dial to ln: the client sends req bytes
// and half-closes, the server reads everything, answers resp bytes and
// closes. It returns the client's and server's local ports.
func exchange(t *testing.T, ln net.Listener, dial func() (net.Conn, error), req, resp int) (cport, sport int) {
	t.Helper()
	srvErr := make(chan error, 1)
	var got int64
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		sport = c.LocalAddr().(*net.TCPAddr).Port
		got, err = io.Copy(io.Discard, c)
		if err != nil {
			srvErr <- err
			return
		}
		_, err = c.Write(make([]byte, resp))
		srvErr <- err
	}()
	c, err := dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	cport = c.LocalAddr().(*net.TCPAddr).Port
	if _, err := c.Write(make([]byte, req)); err != nil {
		t.Fatalf("client write: %v", err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	c.Close()
	if err := <-srvErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	if got != int64(req) || n != int64(resp) {
		t.Fatalf("transfer: server got %d of %d, client got %d of %d", got, req, n, resp)
	}
	return cport, sport
}

// --- network namespaces ---

type nsPair struct {
	client, server       string // namespace names
	clientIP, serverIP   string
	clientIf, serverIf   string
	clientIP6, serverIP6 string
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNSPair builds two namespaces joined by a veth pair with addresses in
// 10.200.x.0/24 (and fd00:200:x::/64), removed when the test ends.
func newNSPair(t *testing.T) *nsPair {
	t.Helper()
	for _, tool := range []string{"ip", "nft", "nstat", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, nftables)", tool)
		}
	}
	id := rand.IntN(1 << 20)
	x := 1 + rand.IntN(250)
	p := &nsPair{
		client: fmt.Sprintf("vigil-t-%x-c", id), server: fmt.Sprintf("vigil-t-%x-s", id),
		clientIP: fmt.Sprintf("10.200.%d.1", x), serverIP: fmt.Sprintf("10.200.%d.2", x),
		clientIf: fmt.Sprintf("vtc%x", id), serverIf: fmt.Sprintf("vts%x", id),
		clientIP6: fmt.Sprintf("fd00:200:%x::1", x), serverIP6: fmt.Sprintf("fd00:200:%x::2", x),
	}
	run(t, "ip", "netns", "add", p.client)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.client).Run() })
	run(t, "ip", "netns", "add", p.server)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.server).Run() })
	run(t, "ip", "link", "add", p.clientIf, "netns", p.client, "type", "veth", "peer", "name", p.serverIf, "netns", p.server)
	for _, s := range []struct{ ns, ifc, ip, ip6 string }{
		{p.client, p.clientIf, p.clientIP, p.clientIP6},
		{p.server, p.serverIf, p.serverIP, p.serverIP6},
	} {
		run(t, "ip", "-n", s.ns, "addr", "add", s.ip+"/24", "dev", s.ifc)
		run(t, "ip", "-n", s.ns, "addr", "add", s.ip6+"/64", "dev", s.ifc, "nodad")
		run(t, "ip", "-n", s.ns, "link", "set", s.ifc, "up")
		run(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
	}
	return p
}

// inNS runs fn on a thread switched into the named network namespace;
// sockets created there stay in it.
func inNS(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			t.Errorf("open own netns: %v", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			t.Errorf("open netns %s: %v", name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", name, err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			t.Errorf("setns back: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

// nstat reads one of the kernel's SNMP counters in a namespace.
func nstat(t *testing.T, ns, counter string) uint64 {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "nstat", "-asz", counter)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == counter {
			var v uint64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	t.Fatalf("nstat: no %s in\n%s", counter, out)
	return 0
}
