package main

import (
	"strconv"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/event"
)

func init() { tracers = append(tracers, tcpTracer) }

var tcpTracer = tracer{
	name:   "tcp",
	help:   "Trace TCP connections (like tcplife, plus failed connects): one line per closed connection with bytes, RTT, retransmits and duration.",
	probe:  "tcp",
	kinds:  []event.Kind{event.KindClose, event.KindConnect, event.KindAccept},
	header: []string{"TIME", "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "RTT_MS", "RETRANS", "DURATION_MS", "RESULT"},
	row:    tcpRow,
	flags: func(cmd *kingpin.CmdClause) func(event.Event) bool {
		var port uint16
		var opens bool
		cmd.Flag("port", "Only connections with this local or remote port.").Uint16Var(&port)
		cmd.Flag("opens", "Also print established connects and accepts (RESULT connect/accept), not only closes and failed connects.").BoolVar(&opens)
		return func(ev event.Event) bool {
			var c *event.TCPConn
			switch e := ev.(type) {
			case *event.TCPClose:
				c = &e.TCPConn
			case *event.TCPConnect:
				if e.Error == "" && !opens {
					return false
				}
				c = &e.TCPConn
			case *event.TCPAccept:
				if !opens {
					return false
				}
				c = &e.TCPConn
			default:
				return false
			}
			return port == 0 || c.SPort == port || c.DPort == port
		}
	},
}

func tcpRow(ev event.Event) []string {
	conn := func(h *event.Header, c *event.TCPConn) []string {
		return []string{h.Time.Format(timeLayout), u32(h.PID), h.Comm, c.SAddr, strconv.Itoa(int(c.SPort)), c.DAddr, strconv.Itoa(int(c.DPort))}
	}
	ms := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	switch e := ev.(type) {
	case *event.TCPClose:
		return append(conn(&e.Header, &e.TCPConn),
			strconv.FormatUint(e.BytesSent/1024, 10), strconv.FormatUint(e.BytesReceived/1024, 10),
			ms(float64(e.SRTTUS)/1000), strconv.Itoa(int(e.Retransmits)), ms(e.DurationMS), "close")
	case *event.TCPConnect:
		result := "connect"
		if e.Error != "" {
			result = e.Error
		}
		return append(conn(&e.Header, &e.TCPConn), "-", "-", "-", "-", ms(e.LatencyMS), result)
	case *event.TCPAccept:
		return append(conn(&e.Header, &e.TCPConn), "-", "-", "-", "-", ms(e.QueuedMS), "accept")
	}
	return nil
}
