package main

import (
	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/event"
)

func init() { tracers = append(tracers, tcpTracer) }

var tcpTracer = tracer{
	name:  "tcp",
	help:  "Trace TCP connections (like tcplife, plus failed connects): one line per closed connection with bytes, RTT, retransmits and duration.",
	probe: "tcp",
	kinds: []event.Kind{event.KindClose, event.KindConnect, event.KindAccept},
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
