package tcp

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
)

// Side by side with libbpf-tools tcplife on the same connections: both
// must report the same set of connections (local and remote ports) and
// the same kilobytes each way.
func TestMatchesTcplife(t *testing.T) {
	tcplife, err := exec.LookPath("tcplife")
	if err != nil {
		for _, p := range []string{"/usr/sbin/tcplife", "/usr/bin/tcplife"} {
			if _, err := os.Stat(p); err == nil {
				tcplife = p
			}
		}
	}
	if tcplife == "" {
		t.Skip("needs tcplife (Debian package libbpf-tools)")
	}
	h := startProbe(t, DefaultConfig())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// stdbuf: tcplife writes through stdio, which a pipe would buffer.
	cmd := exec.CommandContext(ctx, "stdbuf", "-oL", tcplife, "-w", "-p", strconv.Itoa(os.Getpid()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines: // the header: tcplife is attached
		if !strings.HasPrefix(strings.TrimSpace(l), "PID") {
			t.Fatalf("tcplife header: %q", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tcplife did not start")
	}

	ip := randomLoopback()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	sizes := [][2]int{{10*1024 + 500, 3*1024 + 7}, {300*1024 + 100, 100}, {5, 64*1024 + 900}, {2<<20 + 333, 1<<20 + 12}}
	for _, sz := range sizes {
		exchange(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, sz[0], sz[1])
	}

	// vigil: lport rport -> tx_kb rx_kb
	type conn struct{ lport, rport int }
	want := map[conn][2]float64{}
	for _, e := range h.find(t, 2*len(sizes), 5*time.Second, closeFor(port, "outbound")) {
		c := e.(*event.TCPClose)
		want[conn{int(c.SPort), int(c.DPort)}] = [2]float64{float64(c.BytesSent) / 1024, float64(c.BytesReceived) / 1024}
	}
	for _, e := range h.find(t, len(sizes), 5*time.Second, closeFor(port, "inbound")) {
		c := e.(*event.TCPClose)
		want[conn{int(c.SPort), int(c.DPort)}] = [2]float64{float64(c.BytesSent) / 1024, float64(c.BytesReceived) / 1024}
	}
	if len(want) != 2*len(sizes) {
		t.Fatalf("vigil reported %d connections, want %d", len(want), 2*len(sizes))
	}

	// tcplife -w: PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS
	got := map[conn][2]float64{}
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tcplife exited; got %d lines", len(got))
			}
			f := strings.Fields(l)
			if len(f) < 9 || (f[2] != ip && f[4] != ip) {
				continue
			}
			lp, _ := strconv.Atoi(f[3])
			rp, _ := strconv.Atoi(f[5])
			tx, _ := strconv.ParseFloat(f[6], 64)
			rx, _ := strconv.ParseFloat(f[7], 64)
			got[conn{lp, rp}] = [2]float64{tx, rx}
		case <-deadline:
			t.Fatalf("tcplife reported %d of %d connections: %v", len(got), len(want), got)
		}
	}
	for c, w := range want {
		g, ok := got[c]
		if !ok {
			t.Errorf("connection %d->%d: vigil saw it, tcplife did not", c.lport, c.rport)
			continue
		}
		// tcplife prints KB with two decimals from the raw sequence-based
		// counters (payload plus SYN/FIN, at most 2 bytes more): allow the
		// rounding step.
		if math.Abs(g[0]-w[0]) > 0.011 || math.Abs(g[1]-w[1]) > 0.011 {
			t.Errorf("connection %d->%d: vigil TX/RX %.3f/%.3f KB, tcplife %.2f/%.2f KB", c.lport, c.rport, w[0], w[1], g[0], g[1])
		}
	}
	for c := range got {
		if _, ok := want[c]; !ok {
			t.Errorf("connection %d->%d: tcplife saw it, vigil did not", c.lport, c.rport)
		}
	}
	t.Logf("%d connections agree (vigil KB): %s", len(want), fmt.Sprint(want))
}
