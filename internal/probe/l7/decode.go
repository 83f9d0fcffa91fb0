package l7

import (
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
)

// Values of the record's dir, role, family, flags and syscall fields, as in l7.bpf.c.
const (
	dirRead  = 1
	dirWrite = 2

	roleClient = 1
	roleServer = 2

	afInet  = 2
	afInet6 = 10

	flagTruncated = 1
	flagTLS       = 4
)

// syscallNames maps the record's syscall byte to a name.
var syscallNames = [...]string{1: "read", 2: "readv", 3: "recvfrom", 4: "recvmsg", 5: "write", 6: "writev", 7: "sendto", 8: "sendmsg",
	9: "recvmmsg", 10: "sendmmsg",
	16: "SSL_read", 17: "SSL_write", 18: "crypto/tls.(*Conn).Read", 19: "crypto/tls.(*Conn).Write"}

// tlsLibrary names the TLS library of a record's syscall byte (SC_TLS_*).
var tlsLibrary = map[uint8]string{16: "openssl", 17: "openssl", 18: "go", 19: "go"}

// headSize is where the captured bytes follow the fixed part of a record.
var headSize = int(unsafe.Sizeof(l7ConnData{}))

type record struct {
	tsNS  uint64
	proc  probe.KernelProc
	event ConnData // everything but the header
}

// decodeRecord parses one ring buffer record. It never panics, whatever b is.
// Deny-listed HTTP header values in the captured bytes are redacted with
// the state of the record's stream in rs before anything else sees them.
func decodeRecord(b []byte, rs *redactors) (record, error) {
	var r record
	h, err := kernel.DecodeRecord[l7ConnData](b)
	if err != nil {
		return r, fmt.Errorf("conn_data record: %w", err)
	}
	if h.Captured > MaxCaptureLimit || headSize+int(h.Captured) > len(b) {
		return r, fmt.Errorf("conn_data record: %d captured bytes exceed the record (%d bytes)", h.Captured, len(b))
	}
	e := &r.event
	switch h.Dir {
	case dirRead:
		e.Direction = "read"
	case dirWrite:
		e.Direction = "write"
	default:
		return r, fmt.Errorf("conn_data record: unknown direction %d", h.Dir)
	}
	switch h.Role {
	case roleClient:
		e.Role = "client"
	case roleServer:
		e.Role = "server"
	default:
		return r, fmt.Errorf("conn_data record: unknown role %d", h.Role)
	}
	switch h.Family {
	case afInet:
		e.Family = "ipv4"
		e.SAddr = netip.AddrFrom4([4]byte(h.Saddr[:4])).String()
		e.DAddr = netip.AddrFrom4([4]byte(h.Daddr[:4])).String()
	case afInet6:
		e.Family = "ipv6"
		e.SAddr = netip.AddrFrom16(h.Saddr).Unmap().String()
		e.DAddr = netip.AddrFrom16(h.Daddr).Unmap().String()
	default:
		return r, fmt.Errorf("conn_data record: unknown address family %d", h.Family)
	}
	if int(h.Syscall) >= len(syscallNames) || syscallNames[h.Syscall] == "" {
		return r, fmt.Errorf("conn_data record: unknown syscall %d", h.Syscall)
	}
	e.Syscall = syscallNames[h.Syscall]
	r.tsNS = h.TsNs
	r.proc = probe.ToKernelProc(&h.Proc)
	e.Conn = ConnID{PID: h.Proc.Pid, FD: h.Fd, Generation: h.Generation}
	e.SPort, e.DPort = h.Sport, h.Dport
	e.Length = uint64(h.Len)
	e.Captured = h.Captured
	e.Truncated = h.Flags&flagTruncated != 0
	e.Seeded = h.Flags&flagSeeded != 0
	if h.Flags&flagTLS != 0 {
		if e.TLS = tlsLibrary[h.Syscall]; e.TLS == "" {
			return r, fmt.Errorf("conn_data record: TLS flag on syscall %s", e.Syscall)
		}
	}
	e.Data = append([]byte(nil), b[headSize:headSize+int(h.Captured)]...)
	rs.redact(e)
	e.DataB64 = encodeData(e.Data)
	return r, nil
}
