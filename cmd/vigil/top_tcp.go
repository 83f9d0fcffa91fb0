package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe/tcp"
)

func init() {
	toppers = append(toppers, topper{
		name:  "tcp",
		help:  "Live view of established TCP connections by throughput or retransmits (counters sampled by tcp:tcp_probe).",
		setup: setupTopTCP,
	})
}

type topTCPOpts struct {
	config   string
	interval time.Duration
	rows     int
	sortBy   string
	count    int
	pid      uint32
	port     uint16
}

func setupTopTCP(cmd *kingpin.CmdClause) func() error {
	o := &topTCPOpts{}
	cmd.Flag("config", "Config file for probe settings (defaults when omitted).").Short('c').StringVar(&o.config)
	cmd.Flag("interval", "Refresh interval.").Short('i').Default("1s").DurationVar(&o.interval)
	cmd.Flag("rows", "Connections shown.").Short('n').Default("20").IntVar(&o.rows)
	cmd.Flag("sort", "Order: throughput (bytes/s both ways), retrans, rtt.").Default("throughput").EnumVar(&o.sortBy, "throughput", "retrans", "rtt")
	cmd.Flag("count", "Stop after this many refreshes (0 = until interrupted); output is appended, not redrawn, when set.").Default("0").IntVar(&o.count)
	cmd.Flag("pid", "Only connections of this process id.").Short('p').Uint32Var(&o.pid)
	cmd.Flag("port", "Only connections with this local or remote port.").Uint16Var(&o.port)
	return func() error { return runTopTCP(o) }
}

type tcpTopRow struct {
	c              tcp.Conn
	txRate, rxRate float64 // bytes/s over the last interval
}

func runTopTCP(o *topTCPOpts) error {
	if err := checkRefresh(o.interval, "rows", o.rows); err != nil {
		return err
	}
	return runProbeView(o.config, tcp.Name, func(*tcp.Config) {},
		func(ctx context.Context, a *agent.Agent, _ *tcp.Probe) error { return topTCP(ctx, a, o) })
}

func topTCP(ctx context.Context, a *agent.Agent, o *topTCPOpts) error {
	obj := a.Objects()[0]
	lost := newLossReporter(a, nil, "probes.tcp.ringbuf_size")
	defer lost.summary(os.Stderr)
	prev := map[uint64]tcp.Conn{}
	prevAt := kernel.BootNS()
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	out := bufio.NewWriter(os.Stdout)
	for n := 0; o.count == 0 || n < o.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		lost.check(os.Stderr)
		conns, err := tcp.Connections(obj)
		if err != nil {
			return err
		}
		now := kernel.BootNS()
		secs := float64(now-prevAt) / 1e9
		rows := make([]tcpTopRow, 0, len(conns))
		cur := make(map[uint64]tcp.Conn, len(conns))
		for _, c := range conns {
			cur[c.ID] = c
			if o.pid != 0 && c.PID != o.pid {
				continue
			}
			if o.port != 0 && c.Local.Port() != o.port && c.Remote.Port() != o.port {
				continue
			}
			r := tcpTopRow{c: c}
			if p, ok := prev[c.ID]; ok && secs > 0 {
				r.txRate = float64(c.BytesAcked-min(p.BytesAcked, c.BytesAcked)) / secs
				r.rxRate = float64(c.BytesReceived-min(p.BytesReceived, c.BytesReceived)) / secs
			}
			rows = append(rows, r)
		}
		prev, prevAt = cur, now
		slices.SortFunc(rows, func(x, y tcpTopRow) int {
			var a, b float64
			switch o.sortBy {
			case "retrans":
				a, b = float64(x.c.Retransmits), float64(y.c.Retransmits)
			case "rtt":
				a, b = float64(x.c.SRTTUS), float64(y.c.SRTTUS)
			default:
				a, b = x.txRate+x.rxRate, y.txRate+y.rxRate
			}
			switch {
			case a > b:
				return -1
			case a < b:
				return 1
			}
			return 0
		})
		if o.count == 0 {
			fmt.Fprint(out, "\033[H\033[2J")
		}
		fmt.Fprintf(out, "%s  %d established connections in the socket table, sorted by %s\n", time.Now().Format("15:04:05"), len(conns), o.sortBy)
		tw := tabwriter.NewWriter(out, 0, 8, 1, ' ', 0)
		fmt.Fprintln(tw, "PID\tCOMM\tDIR\tLOCAL\tREMOTE\tTX_KB/s\tRX_KB/s\tTX_KB\tRX_KB\tRTT_MS\tRETRANS\tAGE_S")
		for i, r := range rows {
			if i == o.rows {
				break
			}
			dir := "out"
			if r.c.Inbound {
				dir = "in"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%d\t%d\t%.3f\t%d\t%s\n",
				r.c.PID, r.c.Comm, dir, r.c.Local, r.c.Remote, r.txRate/1024, r.rxRate/1024,
				r.c.BytesAcked/1024, r.c.BytesReceived/1024, float64(r.c.SRTTUS)/1000, r.c.Retransmits,
				strconv.FormatFloat(float64(now-min(r.c.EstablishedNS, now))/1e9, 'f', 1, 64))
		}
		tw.Flush()
		fmt.Fprintln(out)
		out.Flush()
	}
	return nil
}
