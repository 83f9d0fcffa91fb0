package l7

import (
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// youngScans is how many scans in a row a process started while the probe
// runs is handed to the callbacks: a process found right after fork may
// not have exec'd yet, and one that loads a library (Python's ssl module)
// does it some time after it starts.
const youngScans = 3

// maxPerScan bounds the processes one periodic scan hands out, new ones
// first, then young ones rescanned; the rest wait for the next scan.
// Reading a process's maps costs 50-600 µs of CPU here (about 1.5 µs per
// line, 40-400 lines), so with the default 2 s interval discovery takes at
// most a few percent of a core on a host that starts processes without
// pause.
const maxPerScan = 256

// discoverer finds processes for the probes that attach to binaries found
// at run time (TLS libraries). At start every process is handed to the
// callbacks once; then every interval /proc is listed and the pids not seen
// before are handed out, each on its first youngScans scans. Processes
// known earlier are not read again, so a settled process that loads a
// library from a file no process had mapped before is not seen.
type discoverer struct {
	proc     string // /proc
	interval time.Duration
	self     int // skipped; 0: none
	// want, when set, says whether a process is of interest (the pid
	// filter): others are not read at all.
	want func(pid int) bool

	onProcess []func(pid int)

	mu   sync.Mutex
	seen map[int]int // pid -> scans it still gets (0: settled)

	scans   prometheus.Counter
	visited prometheus.Counter
	spent   prometheus.Counter
}

func newDiscoverer(procRoot string, interval time.Duration, self int) *discoverer {
	return &discoverer{
		proc: procRoot, interval: interval, self: self, seen: map[int]int{},
		scans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_l7_discovery_scans_total",
			Help: "Scans of /proc for processes whose binaries and libraries the l7 probe attaches to (TLS libraries).",
		}),
		visited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_l7_discovery_processes_total",
			Help: "Processes handed to the l7 probe's binary inspection (each new process on its first scans).",
		}),
		spent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_l7_discovery_seconds_total",
			Help: "Wall time spent in /proc scans and binary inspection, attaches included.",
		}),
	}
}

// OnProcess adds f to what every discovered process is handed to. f may be
// called several times for one pid (a young process is handed out on each
// of its first scans, and may have exec'd in between); callers dedupe by
// file. Add callbacks before start.
func (d *discoverer) OnProcess(f func(pid int)) { d.onProcess = append(d.onProcess, f) }

// collectors are the discovery's self-metrics.
func (d *discoverer) collectors() []prometheus.Collector {
	return []prometheus.Collector{d.scans, d.visited, d.spent}
}

// start hands every running process to the callbacks, once.
func (d *discoverer) start() {
	if len(d.onProcess) == 0 {
		return
	}
	d.scan(true)
}

// run rescans every interval until ctx is done.
func (d *discoverer) run(ctx context.Context) {
	if len(d.onProcess) == 0 || d.interval <= 0 {
		return
	}
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.scan(false)
		}
	}
}

// scan lists /proc; at start every process settles at once, later a new
// pid gets youngScans scans. Pids that are gone are forgotten, so the table
// is bounded by the processes alive.
func (d *discoverer) scan(initial bool) {
	began := time.Now()
	pids := d.list()
	d.mu.Lock()
	var todo, young []int
	alive := make(map[int]struct{}, len(pids))
	for _, pid := range pids {
		alive[pid] = struct{}{}
		left, known := d.seen[pid]
		switch {
		case initial:
			d.seen[pid] = 0
			todo = append(todo, pid)
		case !known && len(todo) < maxPerScan:
			d.seen[pid] = youngScans - 1
			todo = append(todo, pid)
		case known && left > 0:
			young = append(young, pid)
		}
	}
	for _, pid := range young {
		if len(todo) >= maxPerScan {
			break
		}
		d.seen[pid]--
		todo = append(todo, pid)
	}
	for pid := range d.seen {
		if _, ok := alive[pid]; !ok {
			delete(d.seen, pid)
		}
	}
	d.mu.Unlock()
	for _, pid := range todo {
		for _, f := range d.onProcess {
			f(pid)
		}
	}
	d.scans.Inc()
	d.visited.Add(float64(len(todo)))
	d.spent.Add(time.Since(began).Seconds())
}

// list returns the pids in /proc, without the agent's own and those
// not wanted.
func (d *discoverer) list() []int {
	f, err := os.Open(d.proc)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(n)
		if err != nil || pid == d.self || (d.want != nil && !d.want(pid)) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// wantedPID reports whether pid is in the kernel's pid filter (the
// configured pids; tests add more at run time).
func (p *Probe) wantedPID(pid int) bool {
	var v uint8
	return p.maps.PIDs.Lookup(uint32(pid), &v) == nil
}
