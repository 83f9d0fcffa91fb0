package tcp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"unsafe"

	names "github.com/vigilproject/vigil/internal/syscalls"
)

// Record kinds, as in tcp.bpf.c.
const (
	kindConnect       = 1
	kindConnectFailed = 2
	kindAccept        = 3
	kindClose         = 4
)

// Flags, as in tcp.bpf.c.
const (
	flagActive       = 1
	flagPassive      = 2
	flagAccepted     = 4
	flagEstablished  = 8
	flagFromListener = 16
)

// Control bits of tcp_event.ctl: which SYN/FIN sequence numbers the
// kernel's byte counters include.
const (
	ctlSynAcked    = 1
	ctlFinAcked    = 2
	ctlFinReceived = 4
)

// payload returns the payload bytes acknowledged by the peer and received
// from it: tcp_sock.bytes_acked and bytes_received advance with sequence
// numbers, which the SYN and the FINs consume too.
func payload(e *tcpTcpEvent) (sent, received uint64) {
	sent, received = e.BytesAcked, e.BytesReceived
	if e.Ctl&ctlSynAcked != 0 && sent > 0 {
		sent--
	}
	if e.Ctl&ctlFinAcked != 0 && sent > 0 {
		sent--
	}
	if e.Ctl&ctlFinReceived != 0 && received > 0 {
		received--
	}
	return sent, received
}

// Kernel-side counter indexes, as in tcp.bpf.c.
const (
	cSockInsert = iota
	cSockDelete
	cSockInsertFail
	cActiveEstablished
	cPassiveEstablished
	cEstablishedClosed
	cUntrackedClose
	cListenInsert
	cListenDelete
	cAggInsert
	cAggInsertFail
	cRTTSamples
	cRTTSkipped // unused
	cIfInsertFail
	cCgInsertFail
	cMax
)

const (
	afInet  = 2
	afInet6 = 10
)

// rttSlots is the number of log2 RTT buckets in agg_val.
const rttSlots = 27

// eventSize is the size of struct tcp_event; layout_test.go checks it.
const eventSize = int(unsafe.Sizeof(tcpTcpEvent{}))

var errShort = errors.New("record too short")

// decodeEvent copies a ring buffer record into the struct bpf2go generated
// from the same C definition, so field offsets cannot drift.
func decodeEvent(b []byte) (tcpTcpEvent, error) {
	var e tcpTcpEvent
	if len(b) < eventSize {
		return e, fmt.Errorf("tcp record: %w (%d bytes, want %d)", errShort, len(b), eventSize)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&e)), eventSize), b)
	if e.Kind < kindConnect || e.Kind > kindClose {
		return e, fmt.Errorf("tcp record: unknown kind %d", e.Kind)
	}
	return e, nil
}

// addr returns a 16-byte address field of the given family.
func addr(family uint16, b [16]uint8) netip.Addr {
	if family == afInet {
		return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
	}
	// IPv4 peers of dual-stack IPv6 sockets show as plain IPv4.
	return netip.AddrFrom16(b).Unmap()
}

func familyName(f uint16) string {
	if f == afInet6 {
		return "ipv6"
	}
	return "ipv4"
}

// tcpStates names the kernel's TCP states (include/net/tcp_states.h).
var tcpStates = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
	12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE",
}

func stateName(s uint8) string {
	if int(s) < len(tcpStates) && tcpStates[s] != "" {
		return tcpStates[s]
	}
	return "STATE_" + strconv.Itoa(int(s))
}

// errnoName turns an errno value into its symbolic name (ECONNREFUSED).
func errnoName(errno int32) string {
	if errno <= 0 {
		return "closed"
	}
	return names.ErrnoName(int(errno))
}

func nsToMS(ns uint64) float64 { return float64(ns) / 1e6 }

func since(later, earlier uint64) uint64 {
	if earlier == 0 || later < earlier {
		return 0
	}
	return later - earlier
}
