package tcp

import (
	"net"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
)

// With tp_btf and raw_tp ruled out, the lifecycle programs attach to the
// classic tracepoints through the local context structs, and report the
// same connection.
func TestClassicTracepointFallback(t *testing.T) {
	h := startProbe(t, DefaultConfig(), kernel.TpBTF, kernel.RawTP)
	hooks := map[string]kernel.HookKind{}
	for _, st := range h.p.Obj.Status() {
		hooks[st.Name] = st.Hook
	}
	for _, name := range []string{"inet_sock_set_state", "tcp_retransmit_skb", "tcp_send_reset", "tcp_receive_reset"} {
		if hooks[name] != kernel.Tracepoint {
			t.Errorf("%s attached through %q, want tracepoint", name, hooks[name])
		}
	}
	ln, err := net.Listen("tcp", randomLoopback()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	exchange(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, 4321, 1234)
	ev := h.find(t, 1, 5*time.Second, closeFor(port, "outbound"))
	if len(ev) != 1 {
		t.Fatalf("close events: %d, want 1", len(ev))
	}
	if c := ev[0].(*event.TCPClose); c.BytesSent != 4321 || c.BytesReceived != 1234 {
		t.Errorf("classic tracepoint close: sent %d received %d, want 4321 1234", c.BytesSent, c.BytesReceived)
	}
}

// A socket table smaller than the open connections evicts, and the
// evictions are counted.
func TestSocketTableEvictionsCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSockets = 64
	h := startProbe(t, cfg)
	ln, err := net.Listen("tcp", randomLoopback()+":0")
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
			defer c.Close()
		}
	}()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	entries, _ := h.metric(t, "vigil_tcp_table_entries", map[string]string{"table": "sockets"})
	evicted, _ := h.metric(t, "vigil_tcp_table_evictions_total", map[string]string{"table": "sockets"})
	t.Logf("socket table: %v entries, %v evictions", entries, evicted)
	if entries > 64 {
		t.Errorf("socket table holds %v entries, bound is 64", entries)
	}
	// 600 sockets went through a 64-entry table while open.
	if evicted < 600-64 {
		t.Errorf("evictions %v, want at least %d", evicted, 600-64)
	}
}
