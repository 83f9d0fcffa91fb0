// Command driver measures the process probe from the outside, as a user
// would: it starts the built vigil binary, drives exec workloads with
// stress-ng, reads the agent's /metrics and /proc/<pid>/stat, runs
// libbpf-tools execsnoop on the same workload and bpftrace as an
// independent count of the records the kernel side produces, and prints
// markdown tables. bench/process/run.sh builds vigil and runs it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/testutil"
)

var (
	vigilBin    = flag.String("vigil", "bench/results/vigil", "vigil binary")
	duration    = flag.Duration("duration", 10*time.Second, "workload duration per run")
	runs        = flag.Int("runs", 5, "start-up runs")
	idleFor     = flag.Duration("idle", 10*time.Second, "idle measurement window")
	workers     = flag.Int("workers", 2, "parallel exec workers (one per core)")
	execloopBin = flag.String("execloop", "bench/results/execloop", "execloop binary (bench/process/execloop)")
)

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(errors.New("needs root"))
	}
	tmp, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)

	fmt.Printf("Machine: %s, %d CPUs, kernel %s\n\n", cpuModel(), numCPU(), kernelRelease())
	startup()
	idle()
	for _, w := range []workload{stressNG, execLoop} {
		maxRate(tmp, w)
	}
	overload(tmp, execLoop)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "driver:", err)
	os.Exit(1)
}

// --- running vigil ---

type agent struct {
	cmd     *exec.Cmd
	addr    string
	stderr  *strings.Builder
	healthz time.Duration
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startVigil(cfgYAML string) *agent {
	a := &agent{addr: freeAddr(), stderr: &strings.Builder{}}
	args := []string{"run", "--web.listen-address", a.addr}
	if cfgYAML != "" {
		f, err := os.CreateTemp("", "vigil-bench-*.yaml")
		if err != nil {
			fail(err)
		}
		_, _ = f.WriteString(cfgYAML)
		f.Close()
		defer os.Remove(f.Name())
		args = append(args, "--config", f.Name())
	}
	a.cmd = exec.Command(*vigilBin, args...)
	a.cmd.Stderr = &lockedWriter{b: a.stderr}
	t0 := time.Now()
	if err := a.cmd.Start(); err != nil {
		fail(err)
	}
	for {
		resp, err := http.Get("http://" + a.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Since(t0) > 10*time.Second {
			fail(fmt.Errorf("vigil did not answer /healthz: %s", a.stderr))
		}
		time.Sleep(2 * time.Millisecond)
	}
	a.healthz = time.Since(t0)
	return a
}

type lockedWriter struct{ b *strings.Builder }

func (w *lockedWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

func (a *agent) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	_ = a.cmd.Wait()
}

func (a *agent) scrape() testutil.Metrics {
	m, err := testutil.Scrape("http://" + a.addr + "/metrics")
	if err != nil {
		fail(err)
	}
	return m
}

var procLabel = map[string]string{"probe": "process"}

type counters struct {
	received, dropped, execRuns, ringUsed float64
}

func (a *agent) counters() counters {
	m := a.scrape()
	return counters{
		received: m.Value("vigil_probe_events_received_total", procLabel),
		dropped:  m.Value("vigil_probe_events_dropped_total", procLabel),
		execRuns: m.Value("vigil_bpf_program_runs_total", map[string]string{"program": "sched_process_exec"}),
		ringUsed: m.Value("vigil_probe_ringbuf_used_bytes", procLabel),
	}
}

// cpuTicks returns utime and stime of pid in clock ticks (1/100 s).
func cpuTicks(pid int) (utime, stime float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fail(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u, st
}

// cpuNS sums the on-CPU time (user+sys, ns precision) of pid's threads
// from /proc/<pid>/task/*/schedstat.
func cpuNS(pid int) float64 {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		fail(err)
	}
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

func statusKB(pid int, key string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key+":") {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v
		}
	}
	return 0
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// --- start-up ---

var startupRe = regexp.MustCompile(`startup=(\d+(?:\.\d+)?)(ms|s|µs)`)

func startup() {
	var attach, healthz []float64
	for i := 0; i < *runs; i++ {
		a := startVigil("")
		healthz = append(healthz, float64(a.healthz.Microseconds())/1000)
		// The log line is written just before serving; it is there by now.
		if m := startupRe.FindStringSubmatch(a.stderr.String()); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			switch m[2] {
			case "s":
				v *= 1000
			case "µs":
				v /= 1000
			}
			attach = append(attach, v)
		}
		a.stop()
	}
	fmt.Printf("## Start-up (%d runs, default config)\n\n", *runs)
	fmt.Println("| measure | median | min | max |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| all probes attached (`startup=` in the log) | %.0f ms | %.0f ms | %.0f ms |\n", median(attach), slices.Min(attach), slices.Max(attach))
	fmt.Printf("| process start → /healthz answers | %.0f ms | %.0f ms | %.0f ms |\n\n", median(healthz), slices.Min(healthz), slices.Max(healthz))
}

// --- idle ---

func idle() {
	a := startVigil("")
	defer a.stop()
	pid := a.cmd.Process.Pid
	time.Sleep(2 * time.Second)
	c0 := a.counters()
	n0 := cpuNS(pid)
	time.Sleep(*idleFor)
	n1 := cpuNS(pid)
	c1 := a.counters()
	secs := idleFor.Seconds()
	const scrapes = 20
	m0 := cpuNS(pid)
	for i := 0; i < scrapes; i++ {
		a.scrape()
	}
	scrapeCost := (cpuNS(pid) - m0) / scrapes / 1e6
	fmt.Printf("## Idle (default probes, %v, no workload of ours; other activity on the machine continues)\n\n", *idleFor)
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| RSS (VmRSS) | %.1f MB |\n", statusKB(pid, "VmRSS")/1024)
	fmt.Printf("| peak RSS (VmHWM) | %.1f MB |\n", statusKB(pid, "VmHWM")/1024)
	fmt.Printf("| CPU (user+sys, schedstat) | %.3f %% of one core |\n", 100*(n1-n0)/1e9/secs)
	fmt.Printf("| background events received | %.0f (%.1f/s) |\n", c1.received-c0.received, (c1.received-c0.received)/secs)
	fmt.Printf("| agent CPU per /metrics scrape (mean of %d) | %.2f ms |\n\n", scrapes, scrapeCost)
}

// --- maximum exec rate, side by side with execsnoop ---

// workload runs for d and returns how many execs it reports having done.
type workload struct {
	name string
	run  func(d time.Duration) string
}

// stress-ng refuses its exec stressor as root, so it runs as nobody.
var stressNG = workload{
	name: "stress-ng --exec",
	run: func(d time.Duration) string {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"stress-ng", "--exec", strconv.Itoa(*workers), "-t", fmt.Sprintf("%ds", int(d.Seconds())), "--metrics-brief", "--temp-path", os.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			fail(fmt.Errorf("stress-ng: %v\n%s", err, out))
		}
		for _, line := range strings.Split(string(out), "\n") {
			if i := strings.Index(line, "] exec "); i >= 0 {
				if f := strings.Fields(line[i+2:]); len(f) > 1 {
					return f[1] + " (bogo ops)"
				}
			}
		}
		return "?"
	},
}

var execLoop = workload{
	name: "execloop /bin/true",
	run: func(d time.Duration) string {
		out, err := exec.Command(*execloopBin, "-workers", strconv.Itoa(*workers), "-duration", d.String(), "/bin/true").Output()
		if err != nil {
			fail(fmt.Errorf("execloop: %v", err))
		}
		return strings.TrimSpace(string(out))
	},
}

func findExecsnoop() string {
	for _, p := range []string{"execsnoop", "/usr/sbin/execsnoop", "/usr/bin/execsnoop"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

func maxRate(tmp string, w workload) {
	a := startVigil("")
	defer a.stop()
	pid := a.cmd.Process.Pid

	var snoop *exec.Cmd
	var snoopOut, snoopErr *os.File
	if p := findExecsnoop(); p != "" {
		snoopOut, _ = os.Create(filepath.Join(tmp, "execsnoop.out"))
		snoopErr, _ = os.Create(filepath.Join(tmp, "execsnoop.err"))
		snoop = exec.Command(p)
		snoop.Stdout, snoop.Stderr = snoopOut, snoopErr
		if err := snoop.Start(); err != nil {
			fail(err)
		}
		time.Sleep(1500 * time.Millisecond) // execsnoop attaches
	}

	time.Sleep(500 * time.Millisecond)
	c0 := a.counters()
	u0, s0 := cpuTicks(pid)
	n0 := cpuNS(pid)
	var sn0 float64
	if snoop != nil {
		sn0 = cpuNS(snoop.Process.Pid)
	}
	t0 := time.Now()
	done := w.run(*duration)
	elapsed := time.Since(t0).Seconds()
	// Read the CPU time before scraping again: a scrape costs the agent CPU
	// too (measured separately below). Three poll intervals let the agent
	// read the last records of the workload first.
	time.Sleep(3 * kernel.RingPollInterval)
	u1, s1 := cpuTicks(pid)
	n1 := cpuNS(pid)
	waitDrained(a)
	c1 := a.counters()
	var sn1 float64
	snoopLines, snoopLost := 0, "0"
	if snoop != nil {
		sn1 = cpuNS(snoop.Process.Pid)
		_ = snoop.Process.Signal(syscall.SIGINT)
		_ = snoop.Wait()
		snoopOut.Close()
		snoopErr.Close()
		snoopLines = countLines(snoopOut.Name()) - 1 // header
		snoopLost = lostInLog(snoopErr.Name())
	}

	execs := c1.execRuns - c0.execRuns
	recv := c1.received - c0.received
	drop := c1.dropped - c0.dropped
	cpu := (n1 - n0) / 1e9
	ucpu := (u1 - u0) / 100
	_ = s1 - s0
	fmt.Printf("## Maximum exec rate: %s, %d workers, %v (default config: 1 MiB ring buffer)\n\n", w.name, *workers, *duration)
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| execs the workload reports | %s |\n", done)
	fmt.Printf("| execs in the window (kernel run count of the exec program, bpf_stats) | %.0f (%.0f/s) |\n", execs, execs/elapsed)
	fmt.Printf("| records received by vigil (exec + fork + exit) | %.0f (%.0f/s) |\n", recv, recv/elapsed)
	fmt.Printf("| records dropped (ring buffer full) | %.0f |\n", drop)
	fmt.Printf("| vigil CPU (user+sys, schedstat) in the window | %.3f s = %.1f %% of one core |\n", cpu, 100*cpu/elapsed)
	fmt.Printf("| vigil CPU per record, user+sys | %.2f µs |\n", 1e6*cpu/recv)
	fmt.Printf("| vigil CPU per record, user only (utime, 10 ms ticks) | %.2f µs |\n", 1e6*ucpu/recv)
	if snoop != nil {
		scpu := (sn1 - sn0) / 1e9
		fmt.Printf("| execsnoop (libbpf-tools) lines printed, same window | %d |\n", snoopLines)
		fmt.Printf("| execsnoop events lost (its own \"lost\" reports) | %s |\n", snoopLost)
		fmt.Printf("| execsnoop CPU (user+sys, schedstat), output to a file | %.3f s = %.1f %% of one core |\n", scpu, 100*scpu/elapsed)
		if snoopLines > 0 {
			fmt.Printf("| execsnoop CPU per exec printed | %.2f µs |\n", 1e6*scpu/float64(snoopLines))
		}
	}
	fmt.Println()
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}

var lostRe = regexp.MustCompile(`(?i)lost (\d+) events`)

func lostInLog(path string) string {
	b, _ := os.ReadFile(path)
	total := 0
	for _, m := range lostRe.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return strconv.Itoa(total)
}

// waitDrained waits until vigil has read everything in its ring buffer and
// its received counter has stopped moving with the workload.
func waitDrained(a *agent) {
	prev := -1.0
	for i := 0; i < 100; i++ {
		c := a.counters()
		if c.ringUsed == 0 && c.received == prev {
			return
		}
		prev = c.received
		time.Sleep(100 * time.Millisecond)
	}
}

// --- overload: drops are counted exactly ---

// The reference counts, in its own BPF map, the same records vigil's
// programs try to emit with forks and failed execs off: one per exec, one
// per process exit (the last thread, signal->live == 0).
const bpftraceRef = `tracepoint:sched:sched_process_exec { @vigilref = count(); }
tracepoint:sched:sched_process_exit /curtask->signal->live.counter == 0/ { @vigilref = count(); }`

func refMap() (*ebpf.Map, error) {
	var best *ebpf.Map
	var id ebpf.MapID
	for {
		next, err := ebpf.MapGetNextID(id)
		if err != nil {
			break
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		info, err := m.Info()
		if err == nil && info.Name == "AT_vigilref" {
			if best != nil {
				best.Close()
			}
			best = m
			continue
		}
		m.Close()
	}
	if best == nil {
		return nil, errors.New("bpftrace map AT_vigilref not found")
	}
	return best, nil
}

func refCount(m *ebpf.Map) float64 {
	var vals []uint64
	if err := m.Lookup(uint32(0), &vals); err != nil {
		return 0
	}
	var s uint64
	for _, v := range vals {
		s += v
	}
	return float64(s)
}

// snapshot reads vigil's counters and the reference at one instant: a
// reading counts only if vigil's ring was empty and nothing moved between
// the scrape before and the scrape after the reference read.
func snapshot(a *agent, ref *ebpf.Map) (counters, float64, int) {
	for try := 1; ; try++ {
		c1 := a.counters()
		r := refCount(ref)
		c2 := a.counters()
		if c1.ringUsed == 0 && c2.ringUsed == 0 && c1.received == c2.received && c1.dropped == c2.dropped {
			return c2, r, try
		}
		if try > 500 {
			fail(errors.New("no quiet instant for a consistent snapshot in 500 tries"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func overload(tmp string, w workload) {
	bt, err := exec.LookPath("bpftrace")
	if err != nil {
		fmt.Printf("## Overload\n\nskipped: bpftrace not installed (Debian package bpftrace)\n\n")
		return
	}
	const cfg = "probes:\n  process:\n    ringbuf_size: 4096\n    forks: false\n    failed_execs: false\n"
	a := startVigil(cfg)
	defer a.stop()
	ref := exec.Command(bt, "-e", bpftraceRef)
	refOut, _ := os.Create(filepath.Join(tmp, "bpftrace.out"))
	ref.Stdout, ref.Stderr = refOut, refOut
	if err := ref.Start(); err != nil {
		fail(err)
	}
	// Only its map is read; SIGINT sometimes leaves bpftrace 0.17 waiting.
	defer func() { _ = ref.Process.Kill(); _ = ref.Wait() }()
	var m *ebpf.Map
	for i := 0; i < 100 && m == nil; i++ {
		time.Sleep(100 * time.Millisecond)
		m, _ = refMap()
	}
	if m == nil {
		fail(errors.New("bpftrace did not start"))
	}
	defer m.Close()
	time.Sleep(500 * time.Millisecond)

	c0, r0, tries0 := snapshot(a, m)
	d := *duration / 2
	done := w.run(d)
	waitDrained(a)
	c1, r1, tries1 := snapshot(a, m)

	recv, drop, produced := c1.received-c0.received, c1.dropped-c0.dropped, r1-r0
	fmt.Printf("## Overload: drops are counted exactly (`ringbuf_size: 4096`, forks and failed execs off; %s, %d workers, %v)\n\n", w.name, *workers, d)
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| execs the workload reports | %s |\n", done)
	fmt.Printf("| execs (kernel run count of vigil's exec program) | %.0f |\n", c1.execRuns-c0.execRuns)
	fmt.Printf("| records produced (bpftrace reference: execs + process exits) | %.0f |\n", produced)
	fmt.Printf("| received by vigil | %.0f |\n", recv)
	fmt.Printf("| dropped, counted by vigil | %.0f (%.1f %%) |\n", drop, 100*drop/produced)
	fmt.Printf("| received + dropped | %.0f |\n", recv+drop)
	fmt.Printf("| received + dropped − produced | %.0f |\n", recv+drop-produced)
	fmt.Printf("| snapshot attempts (start, end) | %d, %d |\n\n", tries0, tries1)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
