package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/probe/sched"
)

func init() {
	toppers = append(toppers, topper{
		name: "sched",
		help: "Run-queue latency (p50/p99, like runqlat) and off-CPU time by reason (sleep, io, lock, preempted) per container or process (thread comm); counted in the kernel.",
		setup: func(cmd *kingpin.CmdClause) func() error {
			o := &topSchedOpts{}
			cmd.Flag("config", "Config file for probe settings (defaults when omitted).").Short('c').StringVar(&o.config)
			cmd.Flag("by", "Rows per container or process (thread comm).").Default("container").EnumVar(&o.by, "container", "process")
			cmd.Flag("sort", "Order: p99, p50 (run-queue latency), waits, offcpu (all reasons), or one reason.").Default("p99").
				EnumVar(&o.sort, "p99", "p50", "waits", "offcpu", "sleep", "io", "lock", "preempted")
			cmd.Flag("interval", "Refresh interval; each view covers the last interval.").Short('i').Default("1s").DurationVar(&o.interval)
			cmd.Flag("top", "Rows shown.").Default("20").IntVar(&o.top)
			cmd.Flag("once", "Print one interval and exit.").BoolVar(&o.once)
			cmd.Flag("output", "Output format: table or json.").Short('o').Default("table").EnumVar(&o.output, "table", "json")
			return func() error { return runTopSched(o) }
		},
	})
}

type topSchedOpts struct {
	config, by, sort, output string
	interval                 time.Duration
	top                      int
	once                     bool
}

// schedRow is one line of the view: what happened during the interval.
type schedRow struct {
	Name          string             `json:"name"`
	Waits         uint64             `json:"runqueue_waits"`
	P50Seconds    float64            `json:"runqueue_p50_seconds"`
	P99Seconds    float64            `json:"runqueue_p99_seconds"`
	OffCPUSeconds map[string]float64 `json:"offcpu_seconds"`
	offTotal      float64
}

type schedView struct {
	Time            time.Time  `json:"time"`
	IntervalSeconds float64    `json:"interval_seconds"`
	By              string     `json:"by"`
	Sort            string     `json:"sort"`
	Rows            []schedRow `json:"rows"`
	// Samples the kernel could not place during the interval (bounded maps):
	// threads not timed, and samples counted under container "other".
	MapFullThreads uint64 `json:"map_full_threads"`
	MapFullCgroups uint64 `json:"map_full_cgroups"`
}

func runTopSched(o *topSchedOpts) error {
	if err := checkRefresh(o.interval, "top", o.top); err != nil {
		return err
	}
	return runProbeView(o.config, sched.Name, func(c *sched.Config) {
		c.Enabled = true
		c.ThreadStats = c.ThreadStats || o.by == "process"
	}, func(ctx context.Context, _ *agent.Agent, p *sched.Probe) error { return topSched(ctx, p, o) })
}

func topSched(ctx context.Context, p *sched.Probe, o *topSchedOpts) error {
	prev, err := schedSnapshot(p, o.by)
	if err != nil {
		return err
	}
	prevFullT, prevFullC, err := p.MapFull()
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	t := time.NewTicker(o.interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			cur, err := schedSnapshot(p, o.by)
			if err != nil {
				return err
			}
			fullT, fullC, err := p.MapFull()
			if err != nil {
				return err
			}
			view := schedView{Time: now, IntervalSeconds: now.Sub(last).Seconds(), By: o.by, Sort: o.sort,
				Rows: schedRows(cur, prev, o.sort, o.top), MapFullThreads: fullT - prevFullT, MapFullCgroups: fullC - prevFullC}
			prev, last, prevFullT, prevFullC = cur, now, fullT, fullC
			if o.output == "json" {
				if err := json.NewEncoder(out).Encode(view); err != nil {
					return err
				}
			} else {
				if !o.once {
					out.WriteString("\033[H\033[2J") // home, clear screen
				}
				printSchedTable(out, view)
			}
			out.Flush()
			if o.once {
				return nil
			}
		}
	}
}

// schedEntry is one kernel aggregate (a cgroup or a thread) and its row name.
type schedEntry struct {
	name string
	sched.Stats
}

// schedSnapshot reads the aggregates, keyed by cgroup id or thread id.
func schedSnapshot(p *sched.Probe, by string) (map[uint64]schedEntry, error) {
	m := map[uint64]schedEntry{}
	if by == "process" {
		ts, err := p.Threads()
		for _, t := range ts {
			m[uint64(t.TID)] = schedEntry{t.Comm, t.Stats}
		}
		return m, err
	}
	cgs, err := p.Cgroups()
	for _, c := range cgs {
		name := p.Container(c.CgroupID, c.Overflow)
		if name == "" {
			name = "host"
		}
		key := c.CgroupID
		if c.Overflow {
			key = math.MaxUint64
		}
		m[key] = schedEntry{name, c.Stats}
	}
	return m, err
}

// schedRows groups the interval's deltas by name and keeps the top n.
func schedRows(cur, prev map[uint64]schedEntry, sortBy string, n int) []schedRow {
	groups := map[string]*sched.Stats{}
	for k, e := range cur {
		d := e.Stats
		if p, ok := prev[k]; ok && p.name == e.name {
			d = e.Sub(p.Stats)
		}
		g := groups[e.name]
		if g == nil {
			g = &sched.Stats{}
			groups[e.name] = g
		}
		g.Add(d)
	}
	rows := make([]schedRow, 0, len(groups))
	for name, g := range groups {
		r := schedRow{Name: name, Waits: g.RunqCount, OffCPUSeconds: map[string]float64{}}
		if r.Waits > 0 {
			r.P50Seconds, r.P99Seconds = g.Quantile(0.5), g.Quantile(0.99)
		}
		for _, rs := range sched.Reasons() {
			r.OffCPUSeconds[rs.String()] = g.OffCPU(rs)
			r.offTotal += g.OffCPU(rs)
		}
		if r.Waits == 0 && r.offTotal == 0 {
			continue
		}
		rows = append(rows, r)
	}
	key := func(r schedRow) float64 {
		switch sortBy {
		case "p50":
			return r.P50Seconds
		case "waits":
			return float64(r.Waits)
		case "offcpu":
			return r.offTotal
		case "sleep", "io", "lock", "preempted":
			return r.OffCPUSeconds[sortBy]
		}
		return r.P99Seconds
	}
	slices.SortFunc(rows, func(a, b schedRow) int {
		ka, kb := key(a), key(b)
		switch {
		case ka > kb:
			return -1
		case ka < kb:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(rows) > n {
		rows = rows[:n]
	}
	return rows
}

func printSchedTable(w io.Writer, v schedView) {
	fmt.Fprintf(w, "%s  run-queue latency and off-CPU time during the last %.1fs, by %s, sorted by %s\n\n",
		v.Time.Format("15:04:05"), v.IntervalSeconds, v.By, v.Sort)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tWAITS\tP50_US\tP99_US\tSLEEP_MS\tIO_MS\tLOCK_MS\tPREEMPTED_MS\t\n", strings.ToUpper(v.By))
	us := func(s float64) string { return strconv.FormatFloat(s*1e6, 'f', 1, 64) }
	ms := func(s float64) string { return strconv.FormatFloat(s*1e3, 'f', 1, 64) }
	for _, r := range v.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.Waits, us(r.P50Seconds), us(r.P99Seconds),
			ms(r.OffCPUSeconds["sleep"]), ms(r.OffCPUSeconds["io"]), ms(r.OffCPUSeconds["lock"]), ms(r.OffCPUSeconds["preempted"]))
	}
	tw.Flush()
	if v.MapFullThreads > 0 || v.MapFullCgroups > 0 {
		fmt.Fprintf(w, "\nmaps full: %d off-CPU intervals not timed (raise max_threads), %d samples under \"other\" (raise max_cgroups)\n",
			v.MapFullThreads, v.MapFullCgroups)
	}
}
