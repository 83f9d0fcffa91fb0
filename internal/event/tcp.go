package event

// TCPConn names a TCP connection's endpoints, from this host's side: saddr
// and sport are local, daddr and dport remote.
type TCPConn struct {
	Family    string `json:"family" doc:"ipv4 or ipv6"` // "ipv4" or "ipv6"
	SAddr     string `json:"saddr" doc:"local address"`
	SPort     uint16 `json:"sport" doc:"local port"`
	DAddr     string `json:"daddr" doc:"remote address"`
	DPort     uint16 `json:"dport" doc:"remote port"`
	Direction string `json:"direction" doc:"outbound (connect) or inbound (accept)"` // "outbound" (connect) or "inbound" (accept)
	NetNS     uint32 `json:"netns" doc:"network namespace inode number"`             // network namespace inode number
}

// TCPConnect is an outbound connection that was established or that
// failed. A failed connect has Error set: the errno name the kernel stored
// on the socket (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...), or "closed"
// when the application closed the socket before the handshake finished.
type TCPConnect struct {
	Header
	TCPConn
	LatencyMS float64 `json:"latency_ms" doc:"connect() start to ESTABLISHED, or to the failure (ms)"` // connect() start to ESTABLISHED, or to the failure
	Error     string  `json:"error,omitempty" doc:"errno name of a failed connect, or closed"`
	Errno     int     `json:"errno,omitempty" doc:"errno of a failed connect"`
}

// TCPAccept is an inbound connection returned by accept(); the process is
// the accepting task.
type TCPAccept struct {
	Header
	TCPConn
	// QueuedMS is the time between the end of the handshake and accept().
	QueuedMS float64 `json:"queued_ms" doc:"end of the handshake to accept() (ms)"`
}

// TCPClose is the end of an established connection, with the socket's own
// counters read at close.
type TCPClose struct {
	Header
	TCPConn
	// BytesSent counts payload bytes the peer acknowledged (tcp_sock.bytes_acked
	// without the SYN and FIN sequence numbers).
	BytesSent     uint64 `json:"bytes_sent" doc:"payload bytes the peer acknowledged"`
	BytesReceived uint64 `json:"bytes_received" doc:"payload bytes received"`
	// BytesRetrans counts payload bytes sent again (kernels 5.5+; 0 before).
	BytesRetrans uint64  `json:"bytes_retrans" doc:"payload bytes sent again (kernel 5.5+)"`
	SegsIn       uint32  `json:"segs_in" doc:"segments received"`
	SegsOut      uint32  `json:"segs_out" doc:"segments sent"`
	Retransmits  uint32  `json:"retransmits" doc:"retransmitted segments"`
	SRTTUS       uint32  `json:"srtt_us" doc:"smoothed RTT at close (µs)"`         // smoothed RTT at close
	RTTVarUS     uint32  `json:"rttvar_us" doc:"RTT mean deviation at close (µs)"` // RTT mean deviation at close
	DurationMS   float64 `json:"duration_ms" doc:"connection lifetime (ms)"`
	// State is the TCP state the socket left for CLOSE (e.g. FIN_WAIT2).
	State string `json:"state" doc:"TCP state the socket left for CLOSE"`
	// Owner says where the process fields come from: "connect", "accept",
	// or "listener" for a connection closed before any accept().
	Owner string `json:"owner" doc:"where the process fields come from: connect, accept or listener"`
}
