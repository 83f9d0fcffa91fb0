package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/kernel"
)

var (
	attachedDesc = prometheus.NewDesc("vigil_probe_program_attached",
		"1 when the probe's program is attached, with the hook it uses; 0 with hook=\"none\" when an optional program could not attach.",
		[]string{"probe", "program", "hook"}, nil)
	receivedDesc = prometheus.NewDesc("vigil_probe_events_received_total",
		"Records read from the probe's ring buffer.", []string{"probe"}, nil)
	droppedDesc = prometheus.NewDesc("vigil_probe_events_dropped_total",
		"Records the kernel side could not hand over because the ring buffer was full.", []string{"probe", "reason"}, nil)
	ringUsedDesc = prometheus.NewDesc("vigil_probe_ringbuf_used_bytes",
		"Bytes waiting in the probe's ring buffer.", []string{"probe"}, nil)
	ringSizeDesc = prometheus.NewDesc("vigil_probe_ringbuf_size_bytes",
		"Size of the probe's ring buffer.", []string{"probe"}, nil)
	mapEntriesDesc = prometheus.NewDesc("vigil_bpf_map_entries",
		"Entries in a BPF hash map.", []string{"probe", "map"}, nil)
	mapMaxDesc = prometheus.NewDesc("vigil_bpf_map_max_entries",
		"Capacity of a BPF hash map.", []string{"probe", "map"}, nil)
	runTimeDesc = prometheus.NewDesc("vigil_bpf_program_run_seconds_total",
		"Time the kernel spent running the program (needs BPF stats enabled).", []string{"probe", "program"}, nil)
	runCountDesc = prometheus.NewDesc("vigil_bpf_program_runs_total",
		"Times the kernel ran the program (needs BPF stats enabled).", []string{"probe", "program"}, nil)
	sweepsDesc = prometheus.NewDesc("vigil_ring_sweeps_total",
		"Ticks of the shared 50 ms ring sweep; it stands still while every ring is quiet.", nil, nil)
	sweepWakeupsDesc = prometheus.NewDesc("vigil_ring_sweep_wakeups_total",
		"Times the ring sweep found records a producer held back and woke their reader.", nil, nil)
)

// SelfCollector reports the cost and health of the loaded probes at scrape
// time: attach state, ring buffer traffic and fill, map fill and BPF run time.
type SelfCollector struct {
	Objects func() []*kernel.Object
}

// Describe implements prometheus.Collector.
func (c SelfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{attachedDesc, receivedDesc, droppedDesc, ringUsedDesc, ringSizeDesc, mapEntriesDesc, mapMaxDesc, runTimeDesc, runCountDesc, sweepsDesc, sweepWakeupsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c SelfCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(sweepsDesc, prometheus.CounterValue, float64(kernel.RingSweeps()))
	ch <- prometheus.MustNewConstMetric(sweepWakeupsDesc, prometheus.CounterValue, float64(kernel.RingSweepWakeups()))
	for _, o := range c.Objects() {
		for _, p := range o.Programs {
			ch <- prometheus.MustNewConstMetric(attachedDesc, prometheus.GaugeValue, 1, o.Probe, p.Name, string(p.Hook))
			if st, err := p.Prog.Stats(); err == nil {
				ch <- prometheus.MustNewConstMetric(runTimeDesc, prometheus.CounterValue, st.Runtime.Seconds(), o.Probe, p.Name)
				ch <- prometheus.MustNewConstMetric(runCountDesc, prometheus.CounterValue, float64(st.RunCount), o.Probe, p.Name)
			}
		}
		for _, s := range o.Skipped {
			ch <- prometheus.MustNewConstMetric(attachedDesc, prometheus.GaugeValue, 0, o.Probe, s.Name, "none")
		}
		if _, ok := o.Maps["events"]; ok {
			ch <- prometheus.MustNewConstMetric(receivedDesc, prometheus.CounterValue, float64(o.Received.Load()), o.Probe)
			if n, err := o.Dropped(); err == nil {
				ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(n), o.Probe, "ringbuf_full")
			}
		}
		if used, size, ok := o.RingFill(); ok {
			ch <- prometheus.MustNewConstMetric(ringUsedDesc, prometheus.GaugeValue, float64(used), o.Probe)
			ch <- prometheus.MustNewConstMetric(ringSizeDesc, prometheus.GaugeValue, float64(size), o.Probe)
		}
		for _, name := range o.MapNames {
			m := o.Maps[name]
			if n, ok := kernel.MapEntries(m); ok {
				ch <- prometheus.MustNewConstMetric(mapEntriesDesc, prometheus.GaugeValue, float64(n), o.Probe, name)
				ch <- prometheus.MustNewConstMetric(mapMaxDesc, prometheus.GaugeValue, float64(m.MaxEntries()), o.Probe, name)
			}
		}
	}
}
