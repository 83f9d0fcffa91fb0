package tcp

import (
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
)

// Conn is one established connection in the kernel's socket table, with
// the live counters the sampled tcp:tcp_probe hits keep current.
type Conn struct {
	ID            uint64 // kernel socket address: identity while open
	PID           uint32
	Comm          string
	CgroupID      uint64
	Inbound       bool
	Local, Remote netip.AddrPort
	// BytesAcked (payload acknowledged by the peer) and BytesReceived, as
	// of the last sampled segment.
	BytesAcked    uint64
	BytesReceived uint64
	SRTTUS        uint32
	Retransmits   uint32 // segments, from tcp:tcp_retransmit_skb
	EstablishedNS uint64 // CLOCK_BOOTTIME of establishment
	UpdatedNS     uint64 // CLOCK_BOOTTIME of the last sample (0 = none yet)
}

// Connections lists the established connections in the probe's socket table.
func Connections(obj *kernel.Object) ([]Conn, error) {
	var m struct {
		Socks *ebpf.Map `ebpf:"socks"`
	}
	if err := obj.Assign(&m); err != nil {
		return nil, err
	}
	var out []Conn
	iterate(m.Socks, func(k uint64, si tcpSockInfo) {
		if si.Flags&flagEstablished == 0 {
			return
		}
		out = append(out, Conn{
			ID: k, PID: si.Owner.Pid, Comm: probe.CString(si.Owner.Comm[:]), CgroupID: si.Owner.CgroupId,
			Inbound:    si.Flags&flagPassive != 0,
			Local:      netip.AddrPortFrom(addr(si.Family, si.Saddr), si.Sport),
			Remote:     netip.AddrPortFrom(addr(si.Family, si.Daddr), si.Dport),
			BytesAcked: si.BytesAcked, BytesReceived: si.BytesReceived,
			SRTTUS: si.SrttUs, Retransmits: si.Retrans, EstablishedNS: si.EstNs, UpdatedNS: si.UpdatedNs,
		})
	})
	return out, nil
}
