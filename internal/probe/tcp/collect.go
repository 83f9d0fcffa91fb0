package tcp

import (
	"errors"
	"math"
	"strconv"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
)

// aggCollector turns the in-kernel aggregates into Prometheus series at
// scrape time. The kernel keeps per-(owner, remote address) counters in an
// LRU map; a key can be evicted and come back from zero, so the collector
// keeps the last value it saw per key and adds only the increase to
// cumulative per-label-set totals (which never go down).
type aggCollector struct {
	p *Probe

	mu       sync.Mutex
	prevAgg  map[tcpAggKey]aggTotals
	cum      map[aggLabels]*aggTotals
	prevIf   map[tcpIfKey][4]uint64
	ifCum    map[[2]string]*[4]uint64
	prevCg   map[uint64][4]uint64
	cgCum    map[string]*[4]uint64
	evicted  map[string]uint64 // monotonic evictions per table
	hostNS   uint32
	remote   *metrics.LabelCap
	comm     *metrics.LabelCap
	ctr      *metrics.LabelCap
	ifCap    *metrics.LabelCap
	cgCap    *metrics.LabelCap
	nsCap    *metrics.LabelCap
	rttRanks []float64 // bucket upper bounds in seconds
}

type aggLabels struct{ container, comm, remote string }

type aggTotals struct {
	retrans, resetsSent, resetsReceived uint64
	rttCount, rttSumUS                  uint64
	bytesSent, bytesReceived            uint64
	slots                               [rttSlots]uint64
}

func (a *aggTotals) add(b *tcpAggVal) {
	a.retrans += b.Retrans
	a.resetsSent += b.ResetsSent
	a.resetsReceived += b.ResetsReceived
	a.rttCount += b.RttCount
	a.rttSumUS += b.RttSumUs
	a.bytesSent += b.BytesSent
	a.bytesReceived += b.BytesReceived
	for i := range a.slots {
		a.slots[i] += b.RttSlots[i]
	}
}

// delta returns cur - prev per field, or cur where a field went down (the
// key was evicted and re-created).
func delta(cur, prev uint64) uint64 {
	if cur >= prev {
		return cur - prev
	}
	return cur
}

func (a *aggTotals) addDelta(cur, prev *aggTotals) {
	a.retrans += delta(cur.retrans, prev.retrans)
	a.resetsSent += delta(cur.resetsSent, prev.resetsSent)
	a.resetsReceived += delta(cur.resetsReceived, prev.resetsReceived)
	a.rttCount += delta(cur.rttCount, prev.rttCount)
	a.rttSumUS += delta(cur.rttSumUS, prev.rttSumUS)
	a.bytesSent += delta(cur.bytesSent, prev.bytesSent)
	a.bytesReceived += delta(cur.bytesReceived, prev.bytesReceived)
	for i := range a.slots {
		a.slots[i] += delta(cur.slots[i], prev.slots[i])
	}
}

var (
	rttDesc = prometheus.NewDesc("vigil_tcp_rtt_seconds",
		"Smoothed RTT of established TCP connections, sampled from tcp:tcp_probe (every rtt_sample_every-th received segment per CPU), by owner and remote address (capped).",
		[]string{"container", "comm", "remote"}, nil)
	retransDesc = prometheus.NewDesc("vigil_tcp_retransmits_total",
		"TCP segments retransmitted (tcp:tcp_retransmit_skb), by owner and remote address (capped).",
		[]string{"container", "comm", "remote"}, nil)
	resetsDesc = prometheus.NewDesc("vigil_tcp_resets_total",
		"TCP resets sent and received, by owner and remote address (capped; comm \"\" for resets no tracked socket owns).",
		[]string{"direction", "container", "comm", "remote"}, nil)
	bytesDesc = prometheus.NewDesc("vigil_tcp_bytes_total",
		"TCP payload bytes sent (acknowledged by the peer) and received, by owner and remote address (capped); advanced by the sampled tcp:tcp_probe hits and completed at close.",
		[]string{"direction", "container", "comm", "remote"}, nil)
	activeDesc = prometheus.NewDesc("vigil_tcp_connections_active",
		"Established TCP connections in the socket table.", []string{"direction"}, nil)
	tableEntriesDesc = prometheus.NewDesc("vigil_tcp_table_entries",
		"Entries in the probe's bounded kernel tables.", []string{"table"}, nil)
	tableEvictDesc = prometheus.NewDesc("vigil_tcp_table_evictions_total",
		"Entries the kernel's LRU evicted from a full table before they were removed normally (inserted - removed - present).",
		[]string{"table"}, nil)
	tableFailDesc = prometheus.NewDesc("vigil_tcp_table_insert_failures_total",
		"Inserts into the probe's kernel tables that failed.", []string{"table"}, nil)
	untrackedDesc = prometheus.NewDesc("vigil_tcp_untracked_closes_total",
		"Closes of established sockets the socket table did not know (opened before the agent started, or evicted).", nil, nil)
	rttSamplesDesc = prometheus.NewDesc("vigil_tcp_rtt_samples_total",
		"tcp:tcp_probe hits recorded into the RTT histograms (one in rtt_sample_every per CPU).", nil, nil)
	ifBytesDesc = prometheus.NewDesc("vigil_net_interface_bytes_total",
		"Bytes received and transmitted per network interface (net:netif_receive_skb, net:net_dev_xmit).",
		[]string{"interface", "netns", "direction"}, nil)
	ifPacketsDesc = prometheus.NewDesc("vigil_net_interface_packets_total",
		"Packets received and transmitted per network interface.", []string{"interface", "netns", "direction"}, nil)
	cgBytesDesc = prometheus.NewDesc("vigil_net_cgroup_bytes_total",
		"IP bytes received and sent by sockets of a cgroup (container id, or cgroup path for host services), from cgroup_skb.",
		[]string{"cgroup", "direction"}, nil)
	cgPacketsDesc = prometheus.NewDesc("vigil_net_cgroup_packets_total",
		"IP packets received and sent by sockets of a cgroup.", []string{"cgroup", "direction"}, nil)
)

func newAggCollector(p *Probe, limit int) *aggCollector {
	c := &aggCollector{
		p: p, prevAgg: map[tcpAggKey]aggTotals{}, cum: map[aggLabels]*aggTotals{},
		prevIf: map[tcpIfKey][4]uint64{}, ifCum: map[[2]string]*[4]uint64{},
		prevCg: map[uint64][4]uint64{}, cgCum: map[string]*[4]uint64{},
		evicted: map[string]uint64{}, hostNS: hostNetNS(),
		remote: metrics.NewLabelCap("vigil_tcp_aggregates", "remote", limit),
		comm:   metrics.NewLabelCap("vigil_tcp_aggregates", "comm", limit),
		ctr:    metrics.NewLabelCap("vigil_tcp_aggregates", "container", limit),
		ifCap:  metrics.NewLabelCap("vigil_net_interface", "interface", limit),
		cgCap:  metrics.NewLabelCap("vigil_net_cgroup", "cgroup", limit),
		nsCap:  metrics.NewLabelCap("vigil_net_interface", "netns", limit),
	}
	for i := 0; i < rttSlots-1; i++ {
		c.rttRanks = append(c.rttRanks, math.Ldexp(1, i+1)/1e6) // slot i holds [2^i, 2^(i+1)) µs
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *aggCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rttDesc, bytesDesc, retransDesc, resetsDesc, activeDesc, tableEntriesDesc, tableEvictDesc,
		tableFailDesc, untrackedDesc, rttSamplesDesc, ifBytesDesc, ifPacketsDesc, cgBytesDesc, cgPacketsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *aggCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	obj, m := c.p.Obj, &c.p.maps
	if obj == nil || obj.Maps == nil {
		return
	}
	cnt := readCounters(m.Counters)

	// Socket table: active connections and evictions.
	var inbound, outbound, socks int
	iterate(m.Socks, func(_ uint64, si tcpSockInfo) {
		socks++
		if si.Flags&flagEstablished == 0 {
			return
		}
		if si.Flags&flagPassive != 0 {
			inbound++
		} else {
			outbound++
		}
	})
	ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(inbound), "inbound")
	ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(outbound), "outbound")
	listeners := 0
	iterate(m.Listeners, func(_ tcpListenKey, _ tcpSockInfo) { listeners++ })

	// Aggregates.
	seen := make(map[tcpAggKey]aggTotals, len(c.prevAgg))
	iteratePerCPU(m.Agg, func(k tcpAggKey, vals []tcpAggVal) {
		var cur aggTotals
		for i := range vals {
			cur.add(&vals[i])
		}
		seen[k] = cur
		prev := c.prevAgg[k]
		l := aggLabels{
			container: c.ctr.Value(c.p.cgroups.Container(k.CgroupId).Short()),
			comm:      c.comm.Value(probe.CString(k.Comm[:])),
			remote:    c.remote.Value(remoteLabel(k)),
		}
		t := c.cum[l]
		if t == nil {
			t = &aggTotals{}
			c.cum[l] = t
		}
		t.addDelta(&cur, &prev)
	})
	c.prevAgg = seen

	c.table(ch, "sockets", socks, cnt[cSockInsert], cnt[cSockDelete], cnt[cSockInsertFail])
	c.table(ch, "listeners", listeners, cnt[cListenInsert], cnt[cListenDelete], 0)
	c.table(ch, "aggregates", len(seen), cnt[cAggInsert], 0, cnt[cAggInsertFail])
	ch <- prometheus.MustNewConstMetric(untrackedDesc, prometheus.CounterValue, float64(cnt[cUntrackedClose]))
	ch <- prometheus.MustNewConstMetric(rttSamplesDesc, prometheus.CounterValue, float64(cnt[cRTTSamples]))

	for l, t := range c.cum {
		ch <- prometheus.MustNewConstMetric(retransDesc, prometheus.CounterValue, float64(t.retrans), l.container, l.comm, l.remote)
		ch <- prometheus.MustNewConstMetric(resetsDesc, prometheus.CounterValue, float64(t.resetsSent), "sent", l.container, l.comm, l.remote)
		ch <- prometheus.MustNewConstMetric(resetsDesc, prometheus.CounterValue, float64(t.resetsReceived), "received", l.container, l.comm, l.remote)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(t.bytesSent), "sent", l.container, l.comm, l.remote)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(t.bytesReceived), "received", l.container, l.comm, l.remote)
		if t.rttCount == 0 {
			continue
		}
		buckets := make(map[float64]uint64, len(c.rttRanks))
		var run uint64
		for i, ub := range c.rttRanks {
			run += t.slots[i]
			buckets[ub] = run
		}
		ch <- prometheus.MustNewConstHistogram(rttDesc, t.rttCount, float64(t.rttSumUS)/1e6, buckets, l.container, l.comm, l.remote)
	}

	c.collectInterfaces(ch, m.Ifstats, cnt[cIfInsertFail])
	c.collectCgroups(ch, m.Cgstats, cnt[cCgInsertFail])
}

// table reports a bounded table's fill and derives its evictions.
func (c *aggCollector) table(ch chan<- prometheus.Metric, name string, present int, inserted, removed, failed uint64) {
	ev := int64(inserted) - int64(removed) - int64(present)
	if ev > int64(c.evicted[name]) {
		c.evicted[name] = uint64(ev)
	}
	ch <- prometheus.MustNewConstMetric(tableEntriesDesc, prometheus.GaugeValue, float64(present), name)
	ch <- prometheus.MustNewConstMetric(tableEvictDesc, prometheus.CounterValue, float64(c.evicted[name]), name)
	ch <- prometheus.MustNewConstMetric(tableFailDesc, prometheus.CounterValue, float64(failed), name)
}

func (c *aggCollector) collectInterfaces(ch chan<- prometheus.Metric, m *ebpf.Map, failed uint64) {
	if m == nil {
		return
	}
	seen := map[tcpIfKey][4]uint64{}
	iteratePerCPU(m, func(k tcpIfKey, vals []tcpIfVal) {
		var cur [4]uint64
		name := ""
		for _, v := range vals {
			cur[0] += v.RxBytes
			cur[1] += v.RxPackets
			cur[2] += v.TxBytes
			cur[3] += v.TxPackets
			if name == "" {
				name = probe.CString(v.Name[:])
			}
		}
		seen[k] = cur
		prev := c.prevIf[k]
		ns := "host"
		if k.Netns != c.hostNS {
			ns = strconv.FormatUint(uint64(k.Netns), 10)
		}
		l := [2]string{c.ifCap.Value(name), c.nsCap.Value(ns)}
		t := c.ifCum[l]
		if t == nil {
			t = &[4]uint64{}
			c.ifCum[l] = t
		}
		for i := range cur {
			t[i] += delta(cur[i], prev[i])
		}
	})
	c.prevIf = seen
	for l, t := range c.ifCum {
		ch <- prometheus.MustNewConstMetric(ifBytesDesc, prometheus.CounterValue, float64(t[0]), l[0], l[1], "received")
		ch <- prometheus.MustNewConstMetric(ifPacketsDesc, prometheus.CounterValue, float64(t[1]), l[0], l[1], "received")
		ch <- prometheus.MustNewConstMetric(ifBytesDesc, prometheus.CounterValue, float64(t[2]), l[0], l[1], "transmitted")
		ch <- prometheus.MustNewConstMetric(ifPacketsDesc, prometheus.CounterValue, float64(t[3]), l[0], l[1], "transmitted")
	}
	ch <- prometheus.MustNewConstMetric(tableEntriesDesc, prometheus.GaugeValue, float64(len(seen)), "interfaces")
	ch <- prometheus.MustNewConstMetric(tableFailDesc, prometheus.CounterValue, float64(failed), "interfaces")
}

func (c *aggCollector) collectCgroups(ch chan<- prometheus.Metric, m *ebpf.Map, failed uint64) {
	if m == nil || !c.p.cgroupAttached() {
		return
	}
	seen := map[uint64][4]uint64{}
	iteratePerCPU(m, func(k uint64, vals []tcpCgVal) {
		var cur [4]uint64
		for _, v := range vals {
			cur[0] += v.RxBytes
			cur[1] += v.RxPackets
			cur[2] += v.TxBytes
			cur[3] += v.TxPackets
		}
		seen[k] = cur
		prev := c.prevCg[k]
		l := c.cgCap.Value(c.p.cgroupLabel(k))
		t := c.cgCum[l]
		if t == nil {
			t = &[4]uint64{}
			c.cgCum[l] = t
		}
		for i := range cur {
			t[i] += delta(cur[i], prev[i])
		}
	})
	c.prevCg = seen
	for l, t := range c.cgCum {
		ch <- prometheus.MustNewConstMetric(cgBytesDesc, prometheus.CounterValue, float64(t[0]), l, "received")
		ch <- prometheus.MustNewConstMetric(cgPacketsDesc, prometheus.CounterValue, float64(t[1]), l, "received")
		ch <- prometheus.MustNewConstMetric(cgBytesDesc, prometheus.CounterValue, float64(t[2]), l, "sent")
		ch <- prometheus.MustNewConstMetric(cgPacketsDesc, prometheus.CounterValue, float64(t[3]), l, "sent")
	}
	ch <- prometheus.MustNewConstMetric(tableEntriesDesc, prometheus.GaugeValue, float64(len(seen)), "cgroups")
	ch <- prometheus.MustNewConstMetric(tableFailDesc, prometheus.CounterValue, float64(failed), "cgroups")
}

// remoteLabel is the remote address of an aggregate key ("" when unknown).
func remoteLabel(k tcpAggKey) string {
	if k.Family != afInet && k.Family != afInet6 {
		return ""
	}
	return addr(k.Family, k.Raddr).String()
}

func readCounters(m *ebpf.Map) [cMax]uint64 {
	var out [cMax]uint64
	if m == nil {
		return out
	}
	_ = kernel.ReadCounters(m, out[:]) // an unreadable counter shows 0
	return out
}

// iterate visits every entry of a hash map, in batches of 4096 where the
// kernel supports batch lookups (5.6+), else one entry at a time. The walk
// is bounded by the map's size even if entries churn underneath.
func iterate[K comparable, V any](m *ebpf.Map, fn func(K, V)) {
	if m == nil {
		return
	}
	const chunk = 4096
	keys := make([]K, chunk)
	vals := make([]V, chunk)
	var cursor ebpf.MapBatchCursor
	seen := uint32(0)
	for seen <= m.MaxEntries() {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i])
		}
		seen += uint32(n)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return // that was the last batch
		}
		if err != nil {
			if seen == 0 {
				iterateOne(m, fn)
			}
			return
		}
	}
}

func iterateOne[K comparable, V any](m *ebpf.Map, fn func(K, V)) {
	var k K
	var v V
	it := m.Iterate()
	for n := uint32(0); n <= m.MaxEntries() && it.Next(&k, &v); n++ {
		fn(k, v)
	}
}

func iteratePerCPU[K comparable, V any](m *ebpf.Map, fn func(K, []V)) {
	if m == nil {
		return
	}
	var k K
	var v []V
	it := m.Iterate()
	for n := uint32(0); n <= m.MaxEntries() && it.Next(&k, &v); n++ {
		fn(k, v)
	}
}

// hostNetNS is the inode of the agent's own network namespace, labelled
// "host" in the interface metrics.
func hostNetNS() uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return 0
	}
	return uint32(st.Ino)
}
