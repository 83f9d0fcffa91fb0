package tcp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
)

func closeFor(port int, direction string) func(event.Event) bool {
	return func(e event.Event) bool {
		c, ok := e.(*event.TCPClose)
		return ok && c.Direction == direction && (int(c.SPort) == port || int(c.DPort) == port)
	}
}

// Connect, accept and close on loopback, IPv4 and IPv6: owner, ports,
// latency, duration and byte counts equal to what the test sent.
func TestLifecycleLoopback(t *testing.T) {
	h := startProbe(t, DefaultConfig())
	pid, comm := uint32(os.Getpid()), myComm(t)
	for _, tc := range []struct {
		family, listen, dial string
	}{
		{"ipv4", randomLoopback(), ""},
		{"ipv6", "::1", ""},
	} {
		t.Run(tc.family, func(t *testing.T) {
			ln, err := net.Listen("tcp", net.JoinHostPort(tc.listen, "0"))
			if err != nil {
				t.Skipf("%s loopback unavailable: %v", tc.family, err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			const req, resp = 300_001, 70_003
			opened0, _ := h.metric(t, "vigil_tcp_connections_opened_total", map[string]string{"direction": "outbound", "comm": comm})
			cport, _ := exchange(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, req, resp)

			out := h.find(t, 1, 5*time.Second, closeFor(port, "outbound"))
			in := h.find(t, 1, 5*time.Second, closeFor(port, "inbound"))
			if len(out) != 1 || len(in) != 1 {
				t.Fatalf("close events: %d outbound, %d inbound, want 1 and 1", len(out), len(in))
			}
			oc, ic := out[0].(*event.TCPClose), in[0].(*event.TCPClose)
			for _, c := range []*event.TCPClose{oc, ic} {
				if c.PID != pid || c.Comm != comm || c.Family != tc.family {
					t.Errorf("%s close: pid %d comm %q family %s, want %d %q %s", c.Direction, c.PID, c.Comm, c.Family, pid, comm, tc.family)
				}
				if c.DurationMS <= 0 || c.SRTTUS == 0 {
					t.Errorf("%s close: duration %.3f ms, srtt %d µs: want both > 0", c.Direction, c.DurationMS, c.SRTTUS)
				}
			}
			if oc.BytesSent != req || oc.BytesReceived != resp {
				t.Errorf("client close: sent %d received %d, want %d %d", oc.BytesSent, oc.BytesReceived, req, resp)
			}
			if ic.BytesSent != resp || ic.BytesReceived != req {
				t.Errorf("server close: sent %d received %d, want %d %d", ic.BytesSent, ic.BytesReceived, resp, req)
			}
			if int(oc.SPort) != cport || int(oc.DPort) != port || oc.DAddr != tc.listen || oc.Owner != "connect" {
				t.Errorf("client close endpoints %s:%d -> %s:%d owner %s, want :%d -> %s:%d connect", oc.SAddr, oc.SPort, oc.DAddr, oc.DPort, oc.Owner, cport, tc.listen, port)
			}
			if int(ic.SPort) != port || int(ic.DPort) != cport || ic.Owner != "accept" {
				t.Errorf("server close endpoints :%d -> :%d owner %s, want :%d -> :%d accept", ic.SPort, ic.DPort, ic.Owner, port, cport)
			}

			conns := h.find(t, 1, 2*time.Second, func(e event.Event) bool {
				c, ok := e.(*event.TCPConnect)
				return ok && int(c.DPort) == port && int(c.SPort) == cport
			})
			if len(conns) != 1 {
				t.Fatalf("connect events for :%d -> :%d: %d, want 1", cport, port, len(conns))
			}
			if c := conns[0].(*event.TCPConnect); c.PID != pid || c.Error != "" || c.LatencyMS <= 0 || c.LatencyMS > 1000 {
				t.Errorf("connect: pid %d error %q latency %.3f ms, want %d, no error, 0 < latency < 1s", c.PID, c.Error, c.LatencyMS, pid)
			}
			accs := h.find(t, 1, 2*time.Second, func(e event.Event) bool {
				a, ok := e.(*event.TCPAccept)
				return ok && int(a.SPort) == port && int(a.DPort) == cport
			})
			if len(accs) != 1 || accs[0].(*event.TCPAccept).PID != pid {
				t.Errorf("accept events: %v, want one by pid %d", accs, pid)
			}
			opened1, _ := h.metric(t, "vigil_tcp_connections_opened_total", map[string]string{"direction": "outbound", "comm": comm})
			if opened1-opened0 < 1 {
				t.Errorf("vigil_tcp_connections_opened_total{outbound,comm=%s} rose by %v, want >= 1", comm, opened1-opened0)
			}
		})
	}
}

// Refused connects (non-blocking as Go dials, and a blocking connect(2))
// are failures with ECONNREFUSED, and each RST received is counted for
// the remote address.
func TestConnectRefused(t *testing.T) {
	h := startProbe(t, DefaultConfig())
	ip := randomLoopback()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there any more

	if _, err := net.Dial("tcp", ln.Addr().String()); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial: %v, want ECONNREFUSED", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte(net.ParseIP(ip).To4())}
	if err := unix.Connect(fd, sa); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("blocking connect: %v, want ECONNREFUSED", err)
	}
	unix.Close(fd)

	fails := h.find(t, 2, 5*time.Second, func(e event.Event) bool {
		c, ok := e.(*event.TCPConnect)
		return ok && c.DAddr == ip && int(c.DPort) == port
	})
	if len(fails) != 2 {
		t.Fatalf("connect events to %s:%d: %d, want 2", ip, port, len(fails))
	}
	for _, e := range fails {
		c := e.(*event.TCPConnect)
		if c.Error != "ECONNREFUSED" || c.Errno != int(unix.ECONNREFUSED) || c.PID != uint32(os.Getpid()) {
			t.Errorf("failed connect: error %q errno %d pid %d, want ECONNREFUSED %d %d", c.Error, c.Errno, c.PID, unix.ECONNREFUSED, os.Getpid())
		}
	}
	comm := myComm(t)
	if v, _ := h.metric(t, "vigil_tcp_connect_failures_total", map[string]string{"errno": "ECONNREFUSED", "comm": comm}); v < 2 {
		t.Errorf("vigil_tcp_connect_failures_total{ECONNREFUSED} = %v, want >= 2", v)
	}
	if v, _ := h.metric(t, "vigil_tcp_resets_total", map[string]string{"direction": "received", "remote": ip}); v != 2 {
		t.Errorf("vigil_tcp_resets_total{received, remote=%s} = %v, want 2", ip, v)
	}
}

// Across a veth pair: ETIMEDOUT when the server's namespace drops SYNs,
// EHOSTUNREACH when it answers with ICMP host-unreachable, IPv6 across
// the link, and interface counters equal to the kernel's own.
func TestNetnsFailuresAndTraffic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InterfaceTraffic, cfg.CgroupTraffic = true, true
	h := startProbe(t, cfg)
	p := newNSPair(t)
	run(t, "ip", "netns", "exec", p.client, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
	run(t, "ip", "netns", "exec", p.server, "nft", "add table inet vt; add chain inet vt in { type filter hook input priority 0; }; "+
		"add rule inet vt in tcp dport 7001 drop; add rule inet vt in tcp dport { 7002, 7004 } reject with icmp type host-unreachable")

	var errTimeout, errUnreach error
	inNS(t, p.client, func() {
		_, errTimeout = net.DialTimeout("tcp", p.serverIP+":7001", 30*time.Second)
		_, errUnreach = net.DialTimeout("tcp", p.serverIP+":7002", 30*time.Second)
	})
	if !errors.Is(errTimeout, unix.ETIMEDOUT) || !errors.Is(errUnreach, unix.EHOSTUNREACH) {
		t.Fatalf("dials: %v / %v, want ETIMEDOUT / EHOSTUNREACH", errTimeout, errUnreach)
	}
	// The same with a blocking connect(2), whose return value carries the errno.
	var errBlocking error
	inNS(t, p.client, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			errBlocking = err
			return
		}
		defer unix.Close(fd)
		errBlocking = unix.Connect(fd, &unix.SockaddrInet4{Port: 7004, Addr: [4]byte(net.ParseIP(p.serverIP).To4())})
	})
	if !errors.Is(errBlocking, unix.EHOSTUNREACH) {
		t.Fatalf("blocking connect: %v, want EHOSTUNREACH", errBlocking)
	}
	for port, want := range map[uint16]string{7001: "ETIMEDOUT", 7002: "EHOSTUNREACH", 7004: "EHOSTUNREACH"} {
		ev := h.find(t, 1, 5*time.Second, func(e event.Event) bool {
			c, ok := e.(*event.TCPConnect)
			return ok && c.DAddr == p.serverIP && c.DPort == port
		})
		if len(ev) != 1 || ev[0].(*event.TCPConnect).Error != want {
			t.Errorf("connect to :%d: %d events (%s), want one with error %s", port, len(ev), describe(ev), want)
		}
	}

	// IPv6 over the veth, server in its namespace.
	var ln net.Listener
	inNS(t, p.server, func() {
		var err error
		ln, err = net.Listen("tcp", "["+p.serverIP6+"]:7003")
		if err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	defer ln.Close()
	const req, resp = 1_000_000, 12_345
	exchange(t, ln, func() (c net.Conn, err error) {
		inNS(t, p.client, func() { c, err = net.Dial("tcp", "["+p.serverIP6+"]:7003") })
		return c, err
	}, req, resp)
	ev := h.find(t, 2, 5*time.Second, func(e event.Event) bool {
		c, ok := e.(*event.TCPClose)
		return ok && (c.DPort == 7003 || c.SPort == 7003)
	})
	if len(ev) != 2 {
		t.Fatalf("IPv6 close events: %d, want 2", len(ev))
	}
	for _, e := range ev {
		c := e.(*event.TCPClose)
		want := [2]uint64{req, resp}
		if c.Direction == "inbound" {
			want = [2]uint64{resp, req}
		}
		if c.Family != "ipv6" || c.BytesSent != want[0] || c.BytesReceived != want[1] {
			t.Errorf("%s IPv6 close: family %s sent %d received %d, want ipv6 %d %d", c.Direction, c.Family, c.BytesSent, c.BytesReceived, want[0], want[1])
		}
	}

	// Per-owner TCP bytes, aggregated in the kernel, equal the payload.
	for _, c := range []struct {
		remote, dir string
		want        float64
	}{
		{p.serverIP6, "sent", req}, {p.serverIP6, "received", resp},
		{p.clientIP6, "sent", resp}, {p.clientIP6, "received", req},
	} {
		got, _ := h.metric(t, "vigil_tcp_bytes_total", map[string]string{"remote": c.remote, "direction": c.dir})
		if got != c.want {
			t.Errorf("vigil_tcp_bytes_total{remote=%s,direction=%s} = %v, want %v", c.remote, c.dir, got, c.want)
		}
	}
	// Per-cgroup IP traffic (cgroup_skb) covers at least the payload.
	if h.p.cgroupAttached() {
		cg, _ := h.metric(t, "vigil_net_cgroup_bytes_total", map[string]string{"direction": "sent"})
		if cg < req {
			t.Errorf("vigil_net_cgroup_bytes_total{sent} = %v, want at least the %d bytes sent", cg, req)
		}
	}

	// Interface counters: vigil's per-interface totals equal the kernel's.
	ns := strconv.FormatUint(uint64(nsInode(t, p.client)), 10)
	stat := func(name string) float64 {
		out := run(t, "ip", "netns", "exec", p.client, "cat", "/sys/class/net/"+p.clientIf+"/statistics/"+name)
		v, _ := strconv.ParseFloat(strings.TrimSpace(out), 64)
		return v
	}
	for _, c := range []struct{ metric, dir, stat string }{
		{"vigil_net_interface_bytes_total", "transmitted", "tx_bytes"},
		{"vigil_net_interface_packets_total", "transmitted", "tx_packets"},
		{"vigil_net_interface_bytes_total", "received", "rx_bytes"},
		{"vigil_net_interface_packets_total", "received", "rx_packets"},
	} {
		got, _ := h.metric(t, c.metric, map[string]string{"interface": p.clientIf, "netns": ns, "direction": c.dir})
		if want := stat(c.stat); got != want || want == 0 {
			t.Errorf("%s{interface=%s,%s} = %v, kernel %s = %v", c.metric, p.clientIf, c.dir, got, c.stat, want)
		}
	}
}

func nsInode(t *testing.T, name string) uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/var/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// Real loss: the server's namespace drops one packet in five. vigil's
// retransmit counts (the close event and the tcp_retransmit_skb aggregate)
// must equal the kernel's TcpRetransSegs in the client's namespace, and the
// RTT vigil reports must agree with `ss -ti` for the same socket.
func TestRetransmitsMatchKernel(t *testing.T) {
	h := startProbe(t, DefaultConfig())
	p := newNSPair(t)
	run(t, "ip", "netns", "exec", p.server, "nft", "add table inet vt; add chain inet vt in { type filter hook input priority 0; }; "+
		"add rule inet vt in tcp dport 7010 numgen random mod 5 == 0 drop")

	var ln net.Listener
	inNS(t, p.server, func() {
		var err error
		if ln, err = net.Listen("tcp", p.serverIP+":7010"); err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	defer ln.Close()
	before := nstat(t, p.client, "TcpRetransSegs")

	const req = 4 << 20
	var c net.Conn
	inNS(t, p.client, func() {
		var err error
		if c, err = net.Dial("tcp", p.serverIP+":7010"); err != nil {
			t.Errorf("dial: %v", err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	srv := make(chan int64, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			srv <- -1
			return
		}
		buf := make([]byte, 64<<10)
		var n int64
		for {
			k, err := s.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
		}
		s.Close()
		srv <- n
	}()
	if _, err := c.Write(make([]byte, req)); err != nil {
		t.Fatal(err)
	}
	// Wait until everything is acknowledged, then read the socket's RTT
	// as ss sees it, before closing.
	cport := c.LocalAddr().(*net.TCPAddr).Port
	var ssRTT float64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out := run(t, "ip", "netns", "exec", p.client, "ss", "-tinH", "sport", "= :"+strconv.Itoa(cport))
		if strings.Contains(out, "unacked") || !strings.Contains(out, "rtt:") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ssRTT = parseSSRTT(out)
		break
	}
	c.Close()
	if n := <-srv; n != req {
		t.Fatalf("server received %d bytes, want %d", n, req)
	}
	ev := h.find(t, 1, 10*time.Second, func(e event.Event) bool {
		c, ok := e.(*event.TCPClose)
		return ok && c.Direction == "outbound" && c.DAddr == p.serverIP && c.DPort == 7010
	})
	if len(ev) != 1 {
		t.Fatalf("client close events: %d, want 1", len(ev))
	}
	time.Sleep(200 * time.Millisecond) // let the last retransmits of the FIN settle
	after := nstat(t, p.client, "TcpRetransSegs")
	kernel := after - before
	cl := ev[0].(*event.TCPClose)
	agg, _ := h.metric(t, "vigil_tcp_retransmits_total", map[string]string{"remote": p.serverIP})
	t.Logf("TcpRetransSegs +%d, close event retransmits %d, tcp_retransmit_skb aggregate %v, bytes_retrans %d", kernel, cl.Retransmits, agg, cl.BytesRetrans)
	if kernel == 0 {
		t.Fatal("no retransmits: the nftables loss rule did not take effect")
	}
	if uint64(cl.Retransmits) != kernel || uint64(agg) != kernel {
		t.Errorf("retransmits: close event %d, aggregate %v, kernel TcpRetransSegs %d: want all equal", cl.Retransmits, agg, kernel)
	}
	if cl.BytesSent != req {
		t.Errorf("client bytes_sent %d, want %d", cl.BytesSent, req)
	}

	// RTT: ss reads tcp_sock.srtt_us like vigil does; the FIN exchange can
	// add one more sample, so allow 50% or 100 µs, whichever is larger.
	vigilRTT := float64(cl.SRTTUS) / 1000
	tol := max(0.5*ssRTT, 0.1)
	t.Logf("RTT: ss %.3f ms, vigil close srtt %.3f ms", ssRTT, vigilRTT)
	if ssRTT == 0 || vigilRTT < ssRTT-tol || vigilRTT > ssRTT+tol {
		t.Errorf("RTT: vigil %.3f ms vs ss %.3f ms, tolerance %.3f ms", vigilRTT, ssRTT, tol)
	}
	sum, count := h.metric(t, "vigil_tcp_rtt_seconds", map[string]string{"remote": p.serverIP})
	if count == 0 {
		t.Fatalf("vigil_tcp_rtt_seconds{remote=%s}: no samples", p.serverIP)
	}
	t.Logf("RTT histogram: %d samples, mean %.3f ms", count, sum/float64(count)*1000)
}

// parseSSRTT returns the smoothed RTT in ms from `ss -ti` output ("rtt:0.05/0.02").
func parseSSRTT(out string) float64 {
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "rtt:"); ok {
			var rtt float64
			fmt.Sscanf(strings.Split(v, "/")[0], "%g", &rtt)
			return rtt
		}
	}
	return 0
}

func describe(evs []event.Event) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%+v", e))
	}
	return strings.Join(parts, "; ")
}
