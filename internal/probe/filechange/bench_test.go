package filechange

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
	"github.com/vigilproject/vigil/internal/testutil"
)

// bpfTime sums the run time and runs of the logical programs named.
func bpfTime(tb testing.TB, p *Probe, names ...string) (time.Duration, uint64) {
	var d time.Duration
	var n uint64
	for _, pr := range p.Obj.Programs {
		for _, name := range names {
			if pr.Name != name {
				continue
			}
			st, err := pr.Prog.Stats()
			if err != nil {
				tb.Fatal(err)
			}
			d += st.Runtime
			n += st.RunCount
		}
	}
	return d, n
}

// BenchmarkChmod is one fchmodat per op on a file in a watched tree (an
// event is built and published to a subscriber) or in a tree that is not
// watched (the call is only counted), by absolute path or relative to a
// dirfd (the kernel walks the directory's dentries). It reports the BPF
// time of the enter and exit programs per call (bpf_stats on); "off" is
// the same loop without the probe, for the wall-time difference.
func BenchmarkChmod(b *testing.B) {
	watchedDir, otherDir := b.TempDir(), b.TempDir()
	for _, d := range []string{watchedDir, otherDir} {
		if err := unix.Mkdir(filepath.Join(d, "a"), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := unix.Mkdir(filepath.Join(d, "a", "b"), 0o755); err != nil {
			b.Fatal(err)
		}
		fd, err := unix.Open(filepath.Join(d, "a", "b", "f"), unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	for _, c := range []struct {
		name     string
		on       bool
		dir      string
		relative bool
	}{
		{"off", false, watchedDir, false},
		{"watched/absolute", true, watchedDir, false},
		{"watched/relative", true, watchedDir, true},
		{"unwatched/absolute", true, otherDir, false},
		{"unwatched/relative", true, otherDir, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var p *Probe
			if c.on {
				testutil.RequireBPF(b)
				stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
				testutil.SkipIfNotPermitted(b, err)
				defer stats.Close()
				cfg := DefaultConfig()
				cfg.WatchPaths = append(cfg.WatchPaths, watchedDir+"/")
				bus := event.NewBus()
				sub := bus.Subscribe("bench", 1<<16, KindFileChange)
				go func() {
					for range sub.C() {
					}
				}()
				p, _ = startProbe(b, cfg, bus)
				time.Sleep(1100 * time.Millisecond) // events on: the probe polls for consumers every second
			}
			dirfd := unix.AT_FDCWD
			path := filepath.Join(c.dir, "a", "b", "f")
			if c.relative {
				fd, err := unix.Open(filepath.Join(c.dir, "a", "b"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Close(fd)
				dirfd, path = fd, "f"
			}
			var d0 time.Duration
			var n0 uint64
			if p != nil {
				d0, n0 = bpfTime(b, p, "sys_enter_fchmodat", "sys_exit_fchmodat")
			}
			b.ResetTimer()
			for b.Loop() {
				if err := unix.Fchmodat(dirfd, path, 0o644, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if p != nil {
				d, n := bpfTime(b, p, "sys_enter_fchmodat", "sys_exit_fchmodat")
				// Other processes' fchmodat calls run the programs too: an
				// upper bound, on a quiet machine a close one.
				if calls := float64(n-n0) / 2; calls > 0 {
					b.ReportMetric(float64(d-d0)/calls, "bpf-ns/call")
				}
			}
		})
	}
}

// BenchmarkReadOnlyOpen is the price every read-only open pays for the
// open_write hooks: the enter program's flag test and the exit program's
// look-up that finds nothing (BPF time per openat, bpf_stats on).
func BenchmarkReadOnlyOpen(b *testing.B) {
	testutil.RequireBPF(b)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	testutil.SkipIfNotPermitted(b, err)
	defer stats.Close()
	p, _ := startProbe(b, DefaultConfig(), event.NewBus())
	d0, n0 := bpfTime(b, p, "sys_enter_openat", "sys_exit_openat")
	for b.Loop() {
		fd, err := unix.Open("/etc/hostname", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	d, n := bpfTime(b, p, "sys_enter_openat", "sys_exit_openat")
	// Every process's openat runs the programs: the mean over all of them,
	// mostly read-only opens like these.
	if calls := float64(n-n0) / 2; calls > 0 {
		b.ReportMetric(float64(d-d0)/calls, "bpf-ns/open")
		b.ReportMetric(calls/float64(b.N), "opens-seen/op")
	}
	for _, prog := range []string{"sys_enter_openat", "sys_exit_openat"} {
		d, n := bpfTime(b, p, prog)
		b.ReportMetric(float64(d)/float64(n), prog+"-ns/run")
	}
}

// BenchmarkHandle is the user-space cost of one rename record: decode,
// filter check, process lookup (cache hit), event construction and
// publication to a subscriber.
func BenchmarkHandle(b *testing.B) {
	bus := event.NewBus()
	sub := bus.Subscribe("bench", 1<<20, KindFileChange)
	go func() {
		for range sub.C() {
		}
	}()
	procs := proc.NewCache(1024, nil)
	procs.Exec(proc.Process{PID: 4242, Comm: "mv", StartNS: 5e9})
	p := New(DefaultConfig())
	p.Clock = kernel.NewClock()
	p.Env = &probe.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Bus: bus, Procs: procs}
	p.registerMetrics()
	rec := record(filechangeFcHead{Op: 3, Syscall: 6, PathState: stateResolved, Path2State: stateResolved, Dirfd: -100, Dirfd2: -100, Watched: 1}, "/etc/cron.d/.job.tmp", "/etc/cron.d/job")
	b.ReportAllocs()
	for b.Loop() {
		if err := p.handle(rec); err != nil {
			b.Fatal(err)
		}
	}
}
