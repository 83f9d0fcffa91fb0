package kernel

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Sampling configures a perf_event program: it runs on the software CPU
// clock of every online CPU, Frequency times per second of CPU time on each
// (the kernel adjusts the period), or every Period nanoseconds when
// Frequency is 0. Hook.PID limits sampling to one process (the thread given
// and the threads it creates after attach); 0 samples everything.
type Sampling struct {
	Frequency uint64
	Period    uint64
}

// PerfEvent is the hook kind of CPU-clock sampling programs
// (SEC("perf_event")), the base of CPU profiling.
const PerfEvent HookKind = "perf_event"

func init() { registerAttacher(PerfEvent, attachPerfEvent) }

// cpuList is OnlineCPUs, replaceable in tests to include absent CPUs.
var cpuList = OnlineCPUs

// attachPerfEvent opens one CPU-clock event per online CPU and attaches p
// to each. A CPU that cannot be opened (it went offline, or is absent) is
// skipped and named in the detail; attach fails only if no CPU works. A CPU
// brought online after attach is not sampled until the program is
// attached again.
func attachPerfEvent(p *ebpf.Program, _ *ebpf.ProgramSpec, h Hook) ([]io.Closer, string, error) {
	s := h.Sampling
	if s.Frequency == 0 && s.Period == 0 {
		return nil, "", errors.New("perf_event: neither a sampling frequency nor a period given")
	}
	cpus, err := cpuList()
	if err != nil {
		return nil, "", err
	}
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: s.Period,
	}
	if s.Frequency > 0 {
		attr.Sample = s.Frequency
		attr.Bits |= unix.PerfBitFreq
	}
	pid := -1
	if h.PID != 0 {
		pid = h.PID
		attr.Bits |= unix.PerfBitInherit
	}
	var links []io.Closer
	var on, skipped []string
	var firstErr error
	for _, cpu := range cpus {
		l, err := perfEventOn(p, &attr, pid, cpu)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			skipped = append(skipped, fmt.Sprintf("cpu %d: %v", cpu, err))
			continue
		}
		links = append(links, l)
		on = append(on, fmt.Sprint(cpu))
	}
	if len(links) == 0 {
		if errors.Is(firstErr, unix.EINVAL) && s.Frequency > 0 {
			return nil, "", fmt.Errorf("perf_event: %d Hz refused (above kernel.perf_event_max_sample_rate?): %w", s.Frequency, firstErr)
		}
		return nil, "", fmt.Errorf("perf_event: no CPU could be sampled: %w", firstErr)
	}
	detail := "cpus " + strings.Join(on, ",")
	if len(skipped) > 0 {
		detail += "; skipped " + strings.Join(skipped, "; ")
	}
	return links, detail, nil
}

// perfEvent is one CPU's sampling event with the program attached.
type perfEvent struct {
	fd   int
	link io.Closer // nil when attached through the older ioctl
}

func (e *perfEvent) Close() error {
	var err error
	if e.link != nil {
		err = e.link.Close()
	}
	return errors.Join(err, unix.Close(e.fd))
}

func perfEventOn(p *ebpf.Program, attr *unix.PerfEventAttr, pid, cpu int) (*perfEvent, error) {
	fd, err := unix.PerfEventOpen(attr, pid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perf_event_open: %w", err)
	}
	// A BPF link (Linux 5.15+) detaches cleanly; older kernels take the ioctl.
	l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: p, Attach: ebpf.AttachPerfEvent})
	if err == nil {
		return &perfEvent{fd: fd, link: l}, nil
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, p.FD()); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attaching program to perf event: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("enabling perf event: %w", err)
	}
	return &perfEvent{fd: fd}, nil
}
