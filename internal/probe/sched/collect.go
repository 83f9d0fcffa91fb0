package sched

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/metrics"
)

var (
	runqDesc = prometheus.NewDesc("vigil_sched_runqueue_latency_seconds",
		"Time threads waited in a run queue, from becoming runnable (woken, or descheduled while runnable) to running, by container (capped; \"\" is the host), in log2 buckets measured in the kernel as runqlat does.",
		[]string{"container"}, nil)
	offDesc = prometheus.NewDesc("vigil_sched_offcpu_seconds_total",
		"Time threads spent off the CPU, from switch-out to switch-in, by reason (sleep, io, lock, preempted) and container (capped; \"\" is the host).",
		[]string{"reason", "container"}, nil)
	fullDesc = prometheus.NewDesc("vigil_sched_map_full_total",
		"Map inserts refused because the map was full: map=\"threads\" are off-CPU intervals or run-queue waits not timed (raise max_threads), map=\"cgroups\" are samples counted under container \"other\" (raise max_cgroups).",
		[]string{"map"}, nil)
)

// collector turns the kernel aggregates into metrics at scrape time.
type collector struct {
	p       *Probe
	histCap *metrics.LabelCap
	offCap  *metrics.LabelCap
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runqDesc
	ch <- offDesc
	ch <- fullDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	cgs, err := c.p.Cgroups()
	if err != nil {
		c.p.Env.Log.Warn("reading scheduler statistics", "err", err)
		return
	}
	hists := map[string]*Stats{}
	offs := map[string]*Stats{}
	for i := range cgs {
		cg := &cgs[i]
		name := c.p.Container(cg.CgroupID, cg.Overflow)
		for _, m := range []struct {
			cap  *metrics.LabelCap
			into map[string]*Stats
		}{{c.histCap, hists}, {c.offCap, offs}} {
			label := name
			if !cg.Overflow {
				label = m.cap.Value(name)
			}
			s := m.into[label]
			if s == nil {
				s = &Stats{}
				m.into[label] = s
			}
			s.Add(cg.Stats)
		}
	}
	for ctr, s := range hists {
		buckets := make(map[float64]uint64, HistSlots-1)
		var cum uint64
		for b := 0; b < HistSlots-1; b++ {
			cum += s.RunqHist[b]
			buckets[SlotUpperBound(b)] = cum
		}
		ch <- prometheus.MustNewConstHistogram(runqDesc, s.RunqCount, float64(s.RunqNS)/1e9, buckets, ctr)
	}
	for ctr, s := range offs {
		for _, r := range Reasons() {
			ch <- prometheus.MustNewConstMetric(offDesc, prometheus.CounterValue, s.OffCPU(r), r.String(), ctr)
		}
	}
	if threads, cgroups, err := c.p.MapFull(); err == nil {
		ch <- prometheus.MustNewConstMetric(fullDesc, prometheus.CounterValue, float64(threads), "threads")
		ch <- prometheus.MustNewConstMetric(fullDesc, prometheus.CounterValue, float64(cgroups), "cgroups")
	}
}
