package l7

import (
	"errors"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilproject/vigil/internal/kernel"
)

// Kernel counters, as the C_* indexes in l7.bpf.c.
const (
	cConnInsert = iota
	cConnClose
	cConnReplaced
	cStaleFD
	cCallsFull
	cTruncated
	cMmsgSkipped
	cMax
)

// Counters are the kernel's totals since the probe started.
type Counters struct {
	Learnt    uint64 // connections learnt from connect/accept
	Seeded    uint64 // open at start, seeded from /proc
	Closed    uint64 // forgotten at close()
	Replaced  uint64 // learnt over a live entry of the same (pid, fd)
	StaleFD   uint64 // a tracked fd found pointing at another file, forgotten
	CallsFull uint64 // data syscalls not captured: no task storage for the call
	Truncated uint64 // records with fewer bytes captured than transferred
	// MmsgSkipped are messages of recvmmsg/sendmmsg calls past the first
	// few (each captured message is a record), not captured.
	MmsgSkipped uint64
	Live        uint64 // connections in the table now
	// Evicted is what the LRU table dropped to make room: learnt and
	// seeded minus every other way out minus those still there.
	Evicted uint64
}

// ReadCounters sums the per-CPU counters and counts the live table.
func (p *Probe) ReadCounters() (Counters, error) {
	var c Counters
	var vals [cMax]uint64
	if err := kernel.ReadCounters(p.maps.Counters, vals[:]); err != nil {
		return c, err
	}
	c.Learnt, c.Closed, c.Replaced = vals[cConnInsert], vals[cConnClose], vals[cConnReplaced]
	c.StaleFD, c.CallsFull, c.Truncated = vals[cStaleFD], vals[cCallsFull], vals[cTruncated]
	c.MmsgSkipped = vals[cMmsgSkipped]
	var k l7ConnKey
	var v l7ConnInfo
	it := p.maps.Conns.Iterate()
	for it.Next(&k, &v) {
		c.Live++
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		return c, err
	}
	c.Seeded = p.seeded
	out := c.Closed + c.Replaced + c.StaleFD + c.Live
	if in := c.Learnt + c.Seeded; in > out {
		c.Evicted = in - out
	}
	return c, nil
}

var (
	connsDesc = prometheus.NewDesc("vigil_l7_connections_total",
		"TCP connections the connection-stream probe learnt from connect and accept (source=\"syscall\"), or found open at start in /proc (source=\"seeded\").", []string{"source"}, nil)
	liveDesc = prometheus.NewDesc("vigil_l7_connections",
		"TCP connections tracked now (bounded by max_connections).", nil, nil)
	goneDesc = prometheus.NewDesc("vigil_l7_connections_removed_total",
		"Tracked connections removed, by reason: closed, evicted (the table was full: raise max_connections), replaced (the fd was reused unseen), stale_fd (the fd now names another file).",
		[]string{"reason"}, nil)
	missedDesc = prometheus.NewDesc("vigil_l7_calls_missed_total",
		"Reads and writes on tracked connections not captured because the kernel could not allocate the thread's call state (task storage).", nil, nil)
	truncDesc = prometheus.NewDesc("vigil_l7_records_truncated_total",
		"conn_data records with fewer bytes captured than the syscall transferred (max_capture_bytes).", nil, nil)
	mmsgSkippedDesc = prometheus.NewDesc("vigil_l7_mmsg_messages_skipped_total",
		"Messages of recvmmsg/sendmmsg calls on tracked connections past the first 4 of each call, not captured.", nil, nil)
)

type collector struct{ p *Probe }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connsDesc, liveDesc, goneDesc, missedDesc, truncDesc, mmsgSkippedDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n, err := c.p.ReadCounters()
	if err != nil {
		c.p.Env.Log.Warn("reading l7 counters", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.CounterValue, float64(n.Learnt), "syscall")
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.CounterValue, float64(n.Seeded), "seeded")
	ch <- prometheus.MustNewConstMetric(liveDesc, prometheus.GaugeValue, float64(n.Live))
	for _, r := range []struct {
		reason string
		v      uint64
	}{{"closed", n.Closed}, {"evicted", n.Evicted}, {"replaced", n.Replaced}, {"stale_fd", n.StaleFD}} {
		ch <- prometheus.MustNewConstMetric(goneDesc, prometheus.CounterValue, float64(r.v), r.reason)
	}
	ch <- prometheus.MustNewConstMetric(missedDesc, prometheus.CounterValue, float64(n.CallsFull))
	ch <- prometheus.MustNewConstMetric(truncDesc, prometheus.CounterValue, float64(n.Truncated))
	ch <- prometheus.MustNewConstMetric(mmsgSkippedDesc, prometheus.CounterValue, float64(n.MmsgSkipped))
}
