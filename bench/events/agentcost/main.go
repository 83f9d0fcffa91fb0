// Command agentcost measures what `vigil run` costs per process record
// under a steady exec load, as a user runs the agent: the built binary with
// its default configuration, once without event rules and once with the
// default pack, rounds interleaved. A paced loop fork+execs /bin/true at a
// fixed rate (each exec is three process records: fork, exec, exit); the
// agent's CPU time (all threads, /proc/<pid>/task/*/schedstat) is divided
// by the process records it received (vigil_probe_events_received_total).
// With -profile DIR it also saves a CPU profile of each configuration from
// the agent's /debug/pprof endpoint (`vigil run --debug.pprof`), taken in a
// separate window so the measured rounds do not pay for profiling.
//
//	agentcost -vigil bench/results/vigil -rate 1070 -duration 60s -rounds 2
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigilproject/vigil/internal/testutil"
)

var (
	vigilBin = flag.String("vigil", "bench/results/vigil", "vigil binary")
	baseBin  = flag.String("base", "", "a second vigil binary (an earlier build) measured in the same interleaved rounds")
	rate     = flag.Int("rate", 1070, "execs per second (3 process records each)")
	duration = flag.Duration("duration", 60*time.Second, "measured window per round")
	rounds   = flag.Int("rounds", 2, "rounds per configuration, interleaved")
	profile  = flag.String("profile", "", "directory for a CPU profile of each configuration (empty: none)")
	profFor  = flag.Duration("profile-duration", 20*time.Second, "length of each profile")
)

// A setup is one way of running the agent.
type setup struct {
	name string
	bin  string
	cfg  string // YAML layered over the defaults
}

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(errors.New("needs root (the agent loads eBPF programs)"))
	}
	tmp, err := os.MkdirTemp("", "vigil-agentcost-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	common := fmt.Sprintf("rules:\n  data_dir: %s/tsdb\n  files: []\nalerting:\n  state_file: %s/alerts.json\n", tmp, tmp)
	setups := []setup{
		{"no event rules", *vigilBin, common + "event_rules:\n  builtin: false\n"},
		{"default event pack", *vigilBin, common},
	}
	if *baseBin != "" {
		setups = []setup{
			{"base: no event rules", *baseBin, setups[0].cfg}, setups[0],
			{"base: default event pack", *baseBin, setups[1].cfg}, setups[1],
		}
	}
	fmt.Printf("Machine: %s, load average at start: %s\n", cpuModel(), loadavg())
	fmt.Printf("Workload: /bin/true fork+exec at %d/s (paced), %v per round, %d rounds per setup, interleaved\n\n", *rate, *duration, *rounds)
	results := map[string][]result{}
	for r := 0; r < *rounds; r++ {
		for _, s := range setups {
			res := measure(tmp, s)
			results[s.name] = append(results[s.name], res)
			fmt.Fprintf(os.Stderr, "round %d %-20s %8.0f records/s  %6.2f µs/record  load %s\n", r+1, s.name, res.records/res.secs, res.perRecord(), loadavg())
		}
	}
	fmt.Println("| setup | process records/s | agent CPU, % of one core | agent CPU per process record (rounds) | median |")
	fmt.Println("|---|---|---|---|---|")
	for _, s := range setups {
		rs := results[s.name]
		var per, pct, rps []float64
		var each []string
		for _, x := range rs {
			per = append(per, x.perRecord())
			pct = append(pct, 100*x.cpu/x.secs)
			rps = append(rps, x.records/x.secs)
			each = append(each, fmt.Sprintf("%.2f", x.perRecord()))
		}
		fmt.Printf("| %s | %.0f | %.1f | %s µs | %.2f µs |\n", s.name, median(rps), median(pct), strings.Join(each, ", "), median(per))
	}
	fmt.Printf("\nload average at end: %s\n", loadavg())
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			fail(err)
		}
		for _, s := range setups {
			if s.bin != *vigilBin {
				continue // only this build serves /debug/pprof
			}
			path := filepath.Join(*profile, strings.ReplaceAll(s.name, " ", "-")+".pprof")
			profileRun(tmp, s, path)
			fmt.Printf("CPU profile (%v, %s): %s\n", *profFor, s.name, path)
		}
	}
}

type result struct {
	records, cpu, secs float64
}

func (r result) perRecord() float64 { return 1e6 * r.cpu / r.records }

// measure starts the agent, lets it settle under the load, then measures
// one window.
func measure(tmp string, s setup) result {
	a := start(tmp, s, false)
	defer a.stop()
	stopLoad := load(*rate)
	defer stopLoad()
	time.Sleep(3 * time.Second) // start-up work (rule compilation, first scrape of /proc) is over
	r0, c0, t0 := a.received(), cpuNS(a.pid()), time.Now()
	time.Sleep(*duration)
	c1, t1 := cpuNS(a.pid()), time.Now()
	r1 := a.received() // after the CPU reading: a scrape costs CPU too
	return result{records: r1 - r0, cpu: (c1 - c0) / 1e9, secs: t1.Sub(t0).Seconds()}
}

func profileRun(tmp string, s setup, path string) {
	a := start(tmp, s, true)
	defer a.stop()
	stopLoad := load(*rate)
	defer stopLoad()
	time.Sleep(3 * time.Second)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", a.addr, int(profFor.Seconds())))
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		fail(err)
	}
}

// load fork+execs /bin/true at n per second until stopped, from two
// workers (one per core) each on its own schedule.
func load(n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	const workers = 2
	interval := time.Duration(float64(time.Second) * workers / float64(n))
	argv := []string{"/bin/true"}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for {
				select {
				case <-done:
					return
				default:
				}
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = next.Add(interval)
				pid, err := syscall.ForkExec(argv[0], argv, nil)
				if err != nil {
					continue
				}
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, 0, nil)
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

type agent struct {
	cmd  *exec.Cmd
	addr string
	errb *strings.Builder
}

func start(tmp string, s setup, pprof bool) *agent {
	cfg := filepath.Join(tmp, "vigil.yaml")
	if err := os.WriteFile(cfg, []byte(s.cfg), 0o644); err != nil {
		fail(err)
	}
	a := &agent{addr: freeAddr(), errb: &strings.Builder{}}
	args := []string{"run", "--config", cfg, "--web.listen-address", a.addr, "--log.level", "warn"}
	if pprof {
		args = append(args, "--debug.pprof")
	}
	a.cmd = exec.Command(s.bin, args...)
	a.cmd.Stderr = a.errb
	if err := a.cmd.Start(); err != nil {
		fail(err)
	}
	for t0 := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + a.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a
			}
		}
		if time.Since(t0) > 20*time.Second {
			a.stop()
			fail(fmt.Errorf("vigil did not answer /healthz: %s", a.errb))
		}
	}
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

func (a *agent) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	_ = a.cmd.Wait()
}

func (a *agent) received() float64 {
	m, err := testutil.Scrape("http://" + a.addr + "/metrics")
	if err != nil {
		fail(err)
	}
	return m.Value("vigil_probe_events_received_total", map[string]string{"probe": "process"})
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cpuNS sums the on-CPU time (user+sys, ns) of pid's threads.
func cpuNS(pid int) float64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum float64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // thread gone
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			sum += v
		}
	}
	return sum
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "agentcost:", err)
	os.Exit(1)
}
