package l7

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/testutil"
)

// stream collects the conn_data events of the test process.
type stream struct {
	mu  sync.Mutex
	evs []*ConnData
}

func (s *stream) all() []*ConnData {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ConnData(nil), s.evs...)
}

// startProbe runs the probe for cfg.PIDs (none: this process only) and
// collects its events.
func startProbe(t testing.TB, cfg *Config) (*Probe, *stream) {
	t.Helper()
	cfg.Enabled, cfg.ExcludeSelf = true, false
	if len(cfg.PIDs) == 0 {
		cfg.PIDs = []uint32{uint32(os.Getpid())}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	sub := bus.Subscribe("test", 1<<16, KindConnData)
	p := New(cfg)
	env := &probe.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), Bus: bus, LabelLimit: 100}
	testutil.SkipIfNotPermitted(t, p.Start(env))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	s := &stream{}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-sub.C():
				s.mu.Lock()
				s.evs = append(s.evs, ev.(*ConnData))
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; _ = p.Close() })
	return p, s
}

// connFD is the fd number of a TCP connection.
func connFD(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	return uint32(fd)
}

// pair dials a loopback connection to ln and returns both ends.
func pair(t *testing.T, ln net.Listener) (client, server net.Conn) {
	t.Helper()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	client, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	return client, server
}

// rawIO runs f on the connection's fd when it is ready for op.
func rawIO(t *testing.T, c net.Conn, read bool, f func(fd int) (int, error)) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioErr error
	op := func(fd uintptr) bool {
		n, ioErr = f(int(fd))
		return ioErr != unix.EAGAIN
	}
	if read {
		err = rc.Read(op)
	} else {
		err = rc.Write(op)
	}
	if err != nil || ioErr != nil {
		t.Fatalf("raw io: %v %v", err, ioErr)
	}
	return n
}

// find returns the events of one connection end (pid, fd, generation) in
// one direction, in order.
func find(evs []*ConnData, fd uint32, gen uint64, dir string) []*ConnData {
	var out []*ConnData
	for _, e := range evs {
		if e.Conn.FD == fd && e.Conn.Generation == gen && e.Direction == dir {
			out = append(out, e)
		}
	}
	return out
}

// genOf is the generation the probe gave (pid, fd): the one of its latest event.
func genOf(evs []*ConnData, fd uint32) uint64 {
	var g uint64
	for _, e := range evs {
		if e.Conn.FD == fd {
			g = e.Conn.Generation
		}
	}
	return g
}

func joined(evs []*ConnData) (data []byte, length uint64) {
	for _, e := range evs {
		data = append(data, e.Data...)
		length += e.Length
	}
	return data, length
}

func waitEvents(t *testing.T, s *stream, what string, cond func([]*ConnData) bool) []*ConnData {
	t.Helper()
	var evs []*ConnData
	if !testutil.WaitFor(5*time.Second, func() bool { evs = s.all(); return cond(evs) }) {
		for _, e := range evs {
			t.Logf("event: fd=%d gen=%d %s %s %s len=%d %q", e.Conn.FD, e.Conn.Generation, e.Role, e.Direction, e.Syscall, e.Length, Printable(e.Data, 40))
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	return evs
}

func TestStreamKernel(t *testing.T) {
	p, s := startProbe(t, DefaultConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	client, server := pair(t, ln)
	cliPort := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	cfd, sfd := connFD(t, client), connFD(t, server)

	// write/read both ways.
	req := []byte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if _, err := client.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(req))
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write(resp); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, len(resp))
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, s, "request and response", func(evs []*ConnData) bool {
		c, sv := genOf(evs, cfd), genOf(evs, sfd)
		return len(find(evs, cfd, c, "read")) > 0 && len(find(evs, sfd, sv, "read")) > 0
	})
	cgen, sgen := genOf(evs, cfd), genOf(evs, sfd)
	if cgen == 0 || sgen == 0 || cgen == sgen {
		t.Fatalf("generations client %d server %d: want distinct, non-zero", cgen, sgen)
	}
	check := func(e *ConnData, role, dir, sc string, lport, rport uint16, data []byte) {
		t.Helper()
		if e.Role != role || e.Direction != dir || e.Syscall != sc || e.SPort != lport || e.DPort != rport ||
			e.SAddr != "127.0.0.1" || e.DAddr != "127.0.0.1" || e.Family != "ipv4" ||
			e.Length != uint64(len(data)) || !bytes.Equal(e.Data, data) || e.Truncated || e.PID != uint32(os.Getpid()) {
			t.Fatalf("got %+v %q, want %s %s %s %d->%d %q", e.Conn, e.Data, role, dir, sc, lport, rport, data)
		}
	}
	cw, sr := find(evs, cfd, cgen, "write"), find(evs, sfd, sgen, "read")
	sw, cr := find(evs, sfd, sgen, "write"), find(evs, cfd, cgen, "read")
	if len(cw) != 1 || len(sr) != 1 || len(sw) != 1 || len(cr) != 1 {
		t.Fatalf("records: client write %d read %d, server write %d read %d; want 1 each", len(cw), len(cr), len(sw), len(sr))
	}
	check(cw[0], "client", "write", "write", cliPort, srvPort, req)
	check(sr[0], "server", "read", "read", srvPort, cliPort, req)
	check(sw[0], "server", "write", "write", srvPort, cliPort, resp)
	check(cr[0], "client", "read", "read", cliPort, srvPort, resp)

	// writev (net.Buffers) and readv into two buffers.
	bufs := net.Buffers{[]byte("abc"), []byte("defg")}
	if _, err := bufs.WriteTo(client); err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, 3), make([]byte, 4)
	got := 0
	for got < 7 {
		n := rawIO(t, server, true, func(fd int) (int, error) {
			if got < 3 {
				return unix.Readv(fd, [][]byte{a[got:], b})
			}
			return unix.Readv(fd, [][]byte{b[got-3:]})
		})
		got += n
	}
	// sendto/recvfrom and sendmsg/recvmsg.
	rawIO(t, server, false, func(fd int) (int, error) { return len("to!"), unix.Sendto(fd, []byte("to!"), 0, nil) })
	from := make([]byte, 3)
	for got := 0; got < 3; {
		got += rawIO(t, client, true, func(fd int) (int, error) { n, _, err := unix.Recvfrom(fd, from[got:], 0); return n, err })
	}
	rawIO(t, client, false, func(fd int) (int, error) {
		return unix.SendmsgBuffers(fd, [][]byte{[]byte("ms"), []byte("g!")}, nil, nil, 0)
	})
	m1, m2 := make([]byte, 1), make([]byte, 3)
	for got := 0; got < 4; {
		got += rawIO(t, server, true, func(fd int) (int, error) {
			if got == 0 {
				n, _, _, _, err := unix.RecvmsgBuffers(fd, [][]byte{m1, m2}, nil, 0)
				return n, err
			}
			n, _, _, _, err := unix.RecvmsgBuffers(fd, [][]byte{m2[got-1:]}, nil, 0)
			return n, err
		})
	}
	evs = waitEvents(t, s, "vector and msg calls", func(evs []*ConnData) bool {
		d, _ := joined(find(evs, sfd, sgen, "read"))
		return bytes.HasSuffix(d, []byte("abcdefgmsg!"))
	})
	bySyscall := func(fd uint32, gen uint64, dir, sc string) []byte {
		var d []byte
		for _, e := range find(evs, fd, gen, dir) {
			if e.Syscall == sc {
				d = append(d, e.Data...)
			}
		}
		return d
	}
	for _, c := range []struct {
		fd      uint32
		gen     uint64
		dir, sc string
		want    string
	}{
		{cfd, cgen, "write", "writev", "abcdefg"}, {sfd, sgen, "read", "readv", "abcdefg"},
		{sfd, sgen, "write", "sendto", "to!"}, {cfd, cgen, "read", "recvfrom", "to!"},
		{cfd, cgen, "write", "sendmsg", "msg!"}, {sfd, sgen, "read", "recvmsg", "msg!"},
	} {
		if d := bySyscall(c.fd, c.gen, c.dir, c.sc); string(d) != c.want {
			t.Errorf("fd %d %s via %s: got %q, want %q", c.fd, c.dir, c.sc, d, c.want)
		}
	}

	// A 1 MB write: true lengths add up, prefixes are the buffer's, truncation flagged.
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	go func() { _, _ = client.Write(big) }()
	if _, err := io.ReadFull(server, make([]byte, len(big))); err != nil {
		t.Fatal(err)
	}
	evs = waitEvents(t, s, "1 MB on both ends", func(evs []*ConnData) bool {
		var w, r uint64
		for _, e := range find(evs, cfd, cgen, "write") {
			if e.Syscall == "write" {
				w += e.Length
			}
		}
		for _, e := range find(evs, sfd, sgen, "read") {
			if e.Syscall == "read" {
				r += e.Length
			}
		}
		return w == uint64(len(req)+len(big)) && r == uint64(len(req)+len(big))
	})
	off := uint64(0)
	for _, e := range find(evs, sfd, sgen, "read")[1:] {
		if e.Syscall != "read" {
			continue
		}
		want := big[off : off+uint64(e.Captured)]
		if e.Captured != uint32(min(e.Length, 256)) || !bytes.Equal(e.Data, want) || e.Truncated != (e.Length > 256) {
			t.Fatalf("server read at offset %d: captured %d of %d (truncated %v), data mismatch %v", off, e.Captured, e.Length, e.Truncated, !bytes.Equal(e.Data, want))
		}
		off += e.Length
	}
	if off != uint64(len(big)) {
		t.Fatalf("server reads cover %d bytes, want %d", off, len(big))
	}

	// Close both ends; the next connection reuses the fd numbers and must
	// get new generations, with its own role and ports.
	client.Close()
	server.Close()
	client2, server2 := pair(t, ln)
	defer client2.Close()
	defer server2.Close()
	cfd2, sfd2 := connFD(t, client2), connFD(t, server2)
	if (cfd2 != cfd && cfd2 != sfd) || (sfd2 != cfd && sfd2 != sfd) {
		t.Fatalf("fds %d,%d not reused (were %d,%d)", cfd2, sfd2, cfd, sfd)
	}
	cli2Port := uint16(client2.LocalAddr().(*net.TCPAddr).Port)
	if _, err := client2.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server2, make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	evs = waitEvents(t, s, "second connection", func(evs []*ConnData) bool {
		return genOf(evs, sfd2) > max(cgen, sgen) && genOf(evs, cfd2) > max(cgen, sgen)
	})
	cgen2, sgen2 := genOf(evs, cfd2), genOf(evs, sfd2)
	check(find(evs, cfd2, cgen2, "write")[0], "client", "write", "write", cli2Port, srvPort, []byte("second"))
	check(find(evs, sfd2, sgen2, "read")[0], "server", "read", "read", srvPort, cli2Port, []byte("second"))

	n, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if n.Learnt != 4 || n.Closed != 2 || n.Live != 2 || n.Evicted != 0 {
		t.Fatalf("counters %+v: want 4 learnt, 2 closed, 2 live, 0 evicted", n)
	}
}

// TestNotTCPKernel: a connected UDP socket and a pipe carry data, but only
// TCP connections are streamed.
func TestNotTCPKernel(t *testing.T) {
	p, s := startProbe(t, DefaultConfig())
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	uc, err := net.DialUDP("udp4", nil, u.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.Write([]byte("udp data")); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Write(fds[1], []byte("pipe data")); err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Read(fds[0], make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fds[0])
	syscall.Close(fds[1])
	// A TCP exchange afterwards proves the probe was running.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, sv := pair(t, ln)
	defer c.Close()
	defer sv.Close()
	if _, err := c.Write([]byte("tcp")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(sv, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, s, "tcp read", func(evs []*ConnData) bool {
		return len(find(evs, connFD(t, sv), genOf(evs, connFD(t, sv)), "read")) == 1
	})
	time.Sleep(300 * time.Millisecond)
	evs = s.all()
	if len(evs) != 2 {
		for _, e := range evs {
			t.Logf("event: fd=%d %s %s %q", e.Conn.FD, e.Direction, e.Syscall, e.Data)
		}
		t.Fatalf("%d events, want the TCP write and read only", len(evs))
	}
	if n, _ := p.ReadCounters(); n.Learnt != 2 {
		t.Fatalf("learnt %d connections, want 2 (UDP connect is not learnt)", n.Learnt)
	}
}

// TestConnectionBoundKernel: a table smaller than the open connections
// evicts, and every eviction is counted.
func TestConnectionBoundKernel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConnections = 16
	p, _ := startProbe(t, cfg)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const conns = 64
	for i := 0; i < conns; i++ {
		c, sv := pair(t, ln)
		defer c.Close()
		defer sv.Close()
	}
	n, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if n.Learnt != 2*conns || n.Live > 16 || n.Evicted != 2*conns-n.Live || n.Closed != 0 {
		t.Fatalf("counters %+v: want %d learnt, at most 16 live, the rest evicted", n, 2*conns)
	}
}

// TestDupOverTrackedFDKernel: dup2 of a pipe over a tracked socket's fd
// (no close() seen) must not stream the pipe's bytes as the connection's.
func TestDupOverTrackedFDKernel(t *testing.T) {
	p, s := startProbe(t, DefaultConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, server := pair(t, ln)
	defer server.Close()
	cfd := connFD(t, client)
	if _, err := client.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, s, "the write before dup2", func(evs []*ConnData) bool { return len(evs) == 1 })
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if err := unix.Dup3(fds[1], int(cfd), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Write(int(cfd), []byte("pipe bytes")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if evs := s.all(); len(evs) != 1 || string(evs[0].Data) != "before" {
		t.Fatalf("%d events (last %q), want only the write before dup2", len(evs), evs[len(evs)-1].Data)
	}
	n, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if n.StaleFD != 1 || n.Live != 1 {
		t.Fatalf("counters %+v: want 1 stale fd and the server side still live", n)
	}
	_ = client.Close() // closes the pipe's duplicate
}

// TestIPv6Kernel: an IPv6 loopback connection carries its addresses.
func TestIPv6Kernel(t *testing.T) {
	_, s := startProbe(t, DefaultConfig())
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("skipped: no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	client, server := pair(t, ln)
	defer client.Close()
	defer server.Close()
	if _, err := client.Write([]byte("six")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, s, "both ends", func(evs []*ConnData) bool { return len(evs) == 2 })
	srv := uint16(ln.Addr().(*net.TCPAddr).Port)
	cli := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	for _, e := range evs {
		lport, rport := cli, srv
		if e.Role == "server" {
			lport, rport = srv, cli
		}
		if e.Family != "ipv6" || e.SAddr != "::1" || e.DAddr != "::1" || e.SPort != lport || e.DPort != rport || string(e.Data) != "six" {
			t.Errorf("event %s %s %s [%s]:%d -> [%s]:%d %q", e.Role, e.Direction, e.Family, e.SAddr, e.SPort, e.DAddr, e.DPort, e.Data)
		}
	}
}

// TestCaptureLimitKernel: at max_capture_bytes 4096 a writev of two 3000-byte
// buffers is captured up to the limit across the iovec boundary, and 17
// iovecs are copied from the first 16 only.
func TestCaptureLimitKernel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxCaptureBytes = MaxCaptureLimit
	_, s := startProbe(t, cfg)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, server := pair(t, ln)
	defer client.Close()
	defer server.Close()
	a, b := bytes.Repeat([]byte("A"), 3000), bytes.Repeat([]byte("b"), 3000)
	bufs := net.Buffers{a, b}
	if _, err := bufs.WriteTo(client); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 6000)); err != nil {
		t.Fatal(err)
	}
	var small net.Buffers
	var want []byte
	for i := 0; i < 17; i++ {
		small = append(small, []byte{byte('a' + i)})
		want = append(want, byte('a'+i))
	}
	if _, err := small.WriteTo(client); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, s, "two writev", func(evs []*ConnData) bool {
		n := 0
		for _, e := range evs {
			if e.Syscall == "writev" {
				n++
			}
		}
		return n == 2
	})
	var wv []*ConnData
	for _, e := range evs {
		if e.Syscall == "writev" {
			wv = append(wv, e)
		}
	}
	if e := wv[0]; e.Length != 6000 || e.Captured != 4096 || !e.Truncated || !bytes.Equal(e.Data, append(a, b[:1096]...)) {
		t.Errorf("big writev: length %d captured %d truncated %v", e.Length, e.Captured, e.Truncated)
	}
	if e := wv[1]; e.Length != 17 || e.Captured != 16 || !e.Truncated || string(e.Data) != string(want[:16]) {
		t.Errorf("17-iovec writev: length %d captured %d truncated %v %q", e.Length, e.Captured, e.Truncated, e.Data)
	}
}

// TestSeededKernel: a connection open before the probe starts is seeded
// from /proc, marked, and streamed with the right roles and ports.
func TestSeededKernel(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, server := pair(t, ln)
	defer client.Close()
	defer server.Close()
	p, s := startProbe(t, DefaultConfig())
	if _, err := client.Write([]byte("old conn")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, s, "both ends", func(evs []*ConnData) bool { return len(evs) == 2 })
	srv := uint16(ln.Addr().(*net.TCPAddr).Port)
	cli := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	want := map[uint32]struct {
		role, dir    string
		lport, rport uint16
	}{connFD(t, client): {"client", "write", cli, srv}, connFD(t, server): {"server", "read", srv, cli}}
	for _, e := range evs {
		w, ok := want[e.Conn.FD]
		if !ok || !e.Seeded || e.Conn.Generation&seededGenBit == 0 || e.Role != w.role || e.Direction != w.dir ||
			e.SPort != w.lport || e.DPort != w.rport || e.SAddr != "127.0.0.1" || string(e.Data) != "old conn" {
			t.Errorf("event fd %d gen %#x seeded %v %s %s %d->%d %q", e.Conn.FD, e.Conn.Generation, e.Seeded, e.Role, e.Direction, e.SPort, e.DPort, e.Data)
		}
	}
	n, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if n.Seeded != 2 || n.Learnt != 0 || n.Live != 2 || n.Evicted != 0 {
		t.Fatalf("counters %+v: want 2 seeded, 2 live", n)
	}
}
