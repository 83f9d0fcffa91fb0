package tcp

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

func record(e tcpTcpEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&e)), eventSize)...)
}

func TestDecodeEvent(t *testing.T) {
	in := tcpTcpEvent{Kind: kindClose, Family: afInet6, Sport: 1234, Dport: 80, BytesAcked: 1002, BytesReceived: 501,
		Ctl:  ctlSynAcked | ctlFinAcked | ctlFinReceived,
		Proc: tcpVigilProc{Pid: 42, Tid: 43, Ppid: 7, StartNs: 9e9}}
	in.Daddr = [16]uint8{0: 0x20, 1: 0x01, 15: 1}
	copy(in.Proc.Comm[:], []int8{'c', 'u', 'r', 'l'})
	copy(in.Proc.ParentComm[:], []int8{'s', 'h'})
	got, err := decodeEvent(record(in))
	if err != nil {
		t.Fatal(err)
	}
	kp := probe.ToKernelProc(&got.Proc)
	if kp.PID != 42 || kp.TID != 43 || kp.PPID != 7 || kp.StartNS != 9e9 || got.Sport != 1234 || kp.Command() != "curl" ||
		kp.Process(proc.Process{}).ParentComm != "sh" || addr(uint16(got.Family), got.Daddr).String() != "2001::1" {
		t.Errorf("decoded %+v", got)
	}
	if err := probe.CheckKernelProc(reflect.TypeOf(tcpVigilProc{})); err != nil {
		t.Error(err)
	}
	if s, r := payload(&got); s != 1000 || r != 500 {
		t.Errorf("payload %d/%d, want 1000/500 (SYN and FIN removed)", s, r)
	}
	if _, err := decodeEvent(record(in)[:eventSize-1]); err == nil {
		t.Error("short record decoded without error")
	}
	in.Kind = 9
	if _, err := decodeEvent(record(in)); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestPayloadNeverUnderflows(t *testing.T) {
	e := tcpTcpEvent{Ctl: ctlSynAcked | ctlFinAcked | ctlFinReceived}
	if s, r := payload(&e); s != 0 || r != 0 {
		t.Errorf("payload of empty counters: %d/%d", s, r)
	}
}

func TestAddrAndNames(t *testing.T) {
	mapped := [16]uint8{10: 0xff, 11: 0xff, 12: 10, 13: 200, 14: 1, 15: 2}
	if a := addr(afInet6, mapped).String(); a != "10.200.1.2" {
		t.Errorf("IPv4-mapped address shown as %s", a)
	}
	if a := addr(afInet, [16]uint8{127, 0, 0, 1}).String(); a != "127.0.0.1" {
		t.Errorf("IPv4 address %s", a)
	}
	for errno, want := range map[int32]string{111: "ECONNREFUSED", 110: "ETIMEDOUT", 113: "EHOSTUNREACH", 0: "closed"} {
		if got := errnoName(errno); got != want {
			t.Errorf("errnoName(%d) = %s, want %s", errno, got, want)
		}
	}
	if stateName(5) != "FIN_WAIT2" || stateName(99) != "STATE_99" {
		t.Errorf("state names: %s %s", stateName(5), stateName(99))
	}
}

// An aggregate key evicted by the LRU comes back from zero: the increase
// is its whole new value, and totals never go down.
func TestAggDeltaAcrossEviction(t *testing.T) {
	var total aggTotals
	prev := aggTotals{retrans: 10, rttCount: 5}
	cur := aggTotals{retrans: 14, rttCount: 9}
	total.addDelta(&cur, &prev)
	evicted := aggTotals{retrans: 3, rttCount: 1}
	total.addDelta(&evicted, &cur)
	if total.retrans != 4+3 || total.rttCount != 4+1 {
		t.Errorf("totals %+v, want retrans 7 rtt 5", total)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"ringbuf_size":     func(c *Config) { c.RingbufSize = 5000 },
		"max_sockets":      func(c *Config) { c.MaxSockets = 1 },
		"max_aggregates":   func(c *Config) { c.MaxAggregates = 1 << 30 },
		"rtt_sample_every": func(c *Config) { c.RTTSampleEvery = 1 << 21 },
	} {
		c := DefaultConfig()
		mod(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the key", name, err)
		}
	}
}

// Every program has a tracepoint-family hook (no kprobe, no fentry), and
// the connection-lifecycle program can fall back to a classic tracepoint.
func TestProgramsUseTracepointsOnly(t *testing.T) {
	spec, err := loadTcp()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	for _, d := range Programs(cfg) {
		for _, h := range d.Hooks {
			switch h.Kind {
			case kernel.TpBTF, kernel.RawTP, kernel.Tracepoint:
			default:
				t.Errorf("%s: hook %s is not a tracepoint", d.Name, h.Kind)
			}
			if _, ok := spec.Programs[h.Program]; !ok {
				t.Errorf("%s: object has no program %s", d.Name, h.Program)
			}
		}
		if d.Name == "inet_sock_set_state" && d.Hooks[len(d.Hooks)-1].Kind != kernel.Tracepoint {
			t.Errorf("inet_sock_set_state has no classic tracepoint fallback")
		}
	}
	cfg.RTTSampleEvery, cfg.InterfaceTraffic = 0, false
	for _, d := range Programs(cfg) {
		if d.Name == "tcp_probe" || d.Name == "net_dev_xmit" {
			t.Errorf("%s attached although disabled", d.Name)
		}
	}
}
