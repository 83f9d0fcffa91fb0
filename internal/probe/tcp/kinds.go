package tcp

import (
	"strconv"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// kinds are the event kinds this probe emits, registered in the schema.
// The three share one `vigil trace tcp` table (like tcplife, plus failed
// connects); cells a kind lacks show "-".
var kinds = schema.Names(
	schema.MustRegister(schema.Kind{
		Name:     event.KindConnect,
		Producer: Name,
		Doc:      "An outbound TCP connection that was established or that failed (error holds the errno name, or closed).",
		Columns: tcpColumns(nil,
			func(ev event.Event) string { return ms(ev.(*event.TCPConnect).LatencyMS) },
			func(ev event.Event) string {
				if e := ev.(*event.TCPConnect); e.Error != "" {
					return e.Error
				}
				return "connect"
			}),
	}, event.TCPConnect{}),
	schema.MustRegister(schema.Kind{
		Name:     event.KindAccept,
		Producer: Name,
		Doc:      "An inbound TCP connection returned by accept(); the process is the accepting task.",
		Columns: tcpColumns(nil,
			func(ev event.Event) string { return ms(ev.(*event.TCPAccept).QueuedMS) },
			func(event.Event) string { return "accept" }),
	}, event.TCPAccept{}),
	schema.MustRegister(schema.Kind{
		Name:     event.KindClose,
		Producer: Name,
		Doc:      "The end of an established TCP connection, with the socket's byte, segment, retransmit and RTT counters read at close.",
		Columns: tcpColumns([]func(event.Event) string{
			func(ev event.Event) string { return strconv.FormatUint(ev.(*event.TCPClose).BytesSent/1024, 10) },
			func(ev event.Event) string { return strconv.FormatUint(ev.(*event.TCPClose).BytesReceived/1024, 10) },
			func(ev event.Event) string { return ms(float64(ev.(*event.TCPClose).SRTTUS) / 1000) },
			func(ev event.Event) string { return strconv.Itoa(int(ev.(*event.TCPClose).Retransmits)) },
		}, func(ev event.Event) string { return ms(ev.(*event.TCPClose).DurationMS) },
			func(event.Event) string { return "close" }),
	}, event.TCPClose{}),
)

// tcpColumns is the shared table: the endpoints, then TX_KB, RX_KB, RTT_MS
// and RETRANS from counters ("-" when nil), DURATION_MS and RESULT.
func tcpColumns(counters []func(event.Event) string, duration, result func(event.Event) string) []schema.Column {
	cols := []schema.Column{
		{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "COMM", Field: "comm"},
		{Header: "LADDR", Field: "saddr"}, {Header: "LPORT", Field: "sport"},
		{Header: "RADDR", Field: "daddr"}, {Header: "RPORT", Field: "dport"},
	}
	for i, h := range []string{"TX_KB", "RX_KB", "RTT_MS", "RETRANS"} {
		f := func(event.Event) string { return "-" }
		if counters != nil {
			f = counters[i]
		}
		cols = append(cols, schema.Column{Header: h, Format: f})
	}
	return append(cols, schema.Column{Header: "DURATION_MS", Format: duration}, schema.Column{Header: "RESULT", Format: result})
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
