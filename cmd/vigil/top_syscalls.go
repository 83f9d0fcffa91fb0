package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/probe/syscalls"
	"github.com/vigilproject/vigil/internal/proc"
	names "github.com/vigilproject/vigil/internal/syscalls"
)

func init() {
	toppers = append(toppers, topper{
		name: "syscalls",
		help: "Top system calls by count or total time, per syscall, process (thread comm) or container, like syscount; counted in the kernel.",
		setup: func(cmd *kingpin.CmdClause) func() error {
			o := &topSyscallsOpts{}
			cmd.Flag("config", "Config file for probe settings (defaults when omitted).").Short('c').StringVar(&o.config)
			cmd.Flag("by", "Rows per syscall, process (thread comm) or container.").Default("syscall").EnumVar(&o.by, "syscall", "process", "container")
			cmd.Flag("sort", "Sort by count or total time.").Default("count").EnumVar(&o.sort, "count", "time")
			cmd.Flag("interval", "Refresh interval; each view shows the calls made during the last interval.").Default("1s").DurationVar(&o.interval)
			cmd.Flag("top", "Rows shown.").Default("20").IntVar(&o.top)
			cmd.Flag("once", "Print one interval and exit.").BoolVar(&o.once)
			cmd.Flag("output", "Output format: table or json.").Short('o').Default("table").EnumVar(&o.output, "table", "json")
			cmd.Flag("pid", "Only this process (repeatable); filtered in the kernel.").Short('p').Uint32ListVar(&o.pids)
			return func() error { return runTopSyscalls(o) }
		},
	})
}

type topSyscallsOpts struct {
	config   string
	by, sort string
	interval time.Duration
	top      int
	once     bool
	output   string
	pids     []uint32

	cgroupRoot string // from the probe's config
}

// syscallRow is one line of the view: calls during the interval.
type syscallRow struct {
	Name         string  `json:"name"`
	Count        uint64  `json:"count"`
	Errors       uint64  `json:"errors"`
	TotalSeconds float64 `json:"total_seconds"`
	AvgSeconds   float64 `json:"avg_seconds"`
	TopSyscall   string  `json:"top_syscall,omitempty"` // by process or container: the group's most frequent syscall
}

type syscallView struct {
	Time            time.Time    `json:"time"`
	IntervalSeconds float64      `json:"interval_seconds"`
	By              string       `json:"by"`
	Sort            string       `json:"sort"`
	Rows            []syscallRow `json:"rows"`
}

type syscallStatID struct {
	nr       int
	comm     string
	cgroup   uint64
	overflow bool
}

type syscallStatVal struct{ count, errors, totalNS uint64 }

func runTopSyscalls(o *topSyscallsOpts) error {
	if err := checkRefresh(o.interval, "top", o.top); err != nil {
		return err
	}
	return runProbeView(o.config, syscalls.Name, func(c *syscalls.Config) {
		c.Enabled = true
		if len(o.pids) > 0 {
			c.PIDs = o.pids
		}
		o.cgroupRoot = c.CgroupRoot
	}, func(ctx context.Context, a *agent.Agent, p *syscalls.Probe) error { return topSyscalls(ctx, p, a, o) })
}

func topSyscalls(ctx context.Context, p *syscalls.Probe, a *agent.Agent, o *topSyscallsOpts) error {
	// The same resolver the probe uses (the agent's, unless cgroup_root differs).
	cgroups := (&probe.Env{Procs: a.Procs}).CgroupResolver(o.cgroupRoot)
	lost := newLossReporter(a, nil, "probes.syscalls settings")
	defer lost.summary(os.Stderr)
	prev := map[syscallStatID]syscallStatVal{}
	if stats, _, err := p.Snapshot(); err == nil {
		prev = syscallStatMap(stats)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	t := time.NewTicker(o.interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			stats, _, err := p.Snapshot()
			if err != nil {
				return err
			}
			cur := syscallStatMap(stats)
			view := syscallView{Time: now, IntervalSeconds: now.Sub(last).Seconds(), By: o.by, Sort: o.sort,
				Rows: syscallRows(cur, prev, o.by, o.sort, o.top, cgroups)}
			prev, last = cur, now
			for _, r := range lost.check(os.Stderr) {
				if o.output == "json" {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
			}
			if o.output == "json" {
				if err := enc.Encode(view); err != nil {
					return err
				}
			} else {
				if !o.once {
					out.WriteString("\033[H\033[2J") // home, clear screen
				}
				printSyscallTable(out, view)
			}
			out.Flush()
			if o.once {
				return nil
			}
		}
	}
}

func syscallStatMap(stats []syscalls.Stat) map[syscallStatID]syscallStatVal {
	m := make(map[syscallStatID]syscallStatVal, len(stats))
	for _, s := range stats {
		id := syscallStatID{s.Nr, s.Comm, s.CgroupID, s.Overflow}
		v := m[id]
		v.count += s.Count
		v.errors += s.Errors
		v.totalNS += s.TotalNS
		m[id] = v
	}
	return m
}

// syscallRows groups the interval's deltas and keeps the top n.
func syscallRows(cur, prev map[syscallStatID]syscallStatVal, by, sortBy string, n int, cg *proc.Cgroups) []syscallRow {
	type group struct {
		syscallStatVal
		perNr map[int]uint64
	}
	groups := map[string]*group{}
	for id, v := range cur {
		p := prev[id]
		d := syscallStatVal{v.count - p.count, v.errors - p.errors, v.totalNS - p.totalNS}
		if d.count == 0 {
			continue
		}
		var key string
		switch by {
		case "syscall":
			key = names.Name(id.nr)
		case "process":
			key = id.comm
			if id.overflow {
				key = "other"
			}
		case "container":
			key = cg.Container(id.cgroup).Short()
			if id.overflow {
				key = "other"
			} else if key == "" {
				key = "host"
			}
		}
		g := groups[key]
		if g == nil {
			g = &group{perNr: map[int]uint64{}}
			groups[key] = g
		}
		g.count += d.count
		g.errors += d.errors
		g.totalNS += d.totalNS
		g.perNr[id.nr] += d.count
	}
	rows := make([]syscallRow, 0, len(groups))
	for name, g := range groups {
		r := syscallRow{Name: name, Count: g.count, Errors: g.errors, TotalSeconds: float64(g.totalNS) / 1e9,
			AvgSeconds: float64(g.totalNS) / 1e9 / float64(g.count)}
		if by != "syscall" {
			best, bestN := -1, uint64(0)
			for nr, c := range g.perNr {
				if c > bestN || (c == bestN && nr < best) {
					best, bestN = nr, c
				}
			}
			r.TopSyscall = names.Name(best)
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b syscallRow) int {
		ka, kb := float64(a.Count), float64(b.Count)
		if sortBy == "time" {
			ka, kb = a.TotalSeconds, b.TotalSeconds
		}
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

func printSyscallTable(w io.Writer, v syscallView) {
	fmt.Fprintf(w, "%s  calls during the last %.1fs, by %s, sorted by %s\n\n", v.Time.Format("15:04:05"), v.IntervalSeconds, v.By, v.Sort)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	first := strings.ToUpper(v.By)
	if v.By == "syscall" {
		fmt.Fprintf(tw, "%s\tCOUNT\tERRORS\tTOTAL_MS\tAVG_US\t\n", first)
	} else {
		fmt.Fprintf(tw, "%s\tCOUNT\tERRORS\tTOTAL_MS\tAVG_US\tTOP_SYSCALL\t\n", first)
	}
	for _, r := range v.Rows {
		line := []string{r.Name, strconv.FormatUint(r.Count, 10), strconv.FormatUint(r.Errors, 10),
			strconv.FormatFloat(r.TotalSeconds*1e3, 'f', 3, 64), strconv.FormatFloat(r.AvgSeconds*1e6, 'f', 3, 64)}
		if v.By != "syscall" {
			line = append(line, r.TopSyscall)
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	tw.Flush()
}
