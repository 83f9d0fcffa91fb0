package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// HookKind is a way of attaching a BPF program to the kernel.
type HookKind string

// Hook kinds in the order vigil prefers them where several would do.
const (
	TpBTF      HookKind = "tp_btf"
	RawTP      HookKind = "raw_tp"
	Tracepoint HookKind = "tracepoint"
	Fentry     HookKind = "fentry"
	Kprobe     HookKind = "kprobe"
	Uprobe     HookKind = "uprobe"
	LSM        HookKind = "lsm"
	CgroupSKB  HookKind = "cgroup_skb"
)

// Feature is one probed kernel capability.
type Feature struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Features is the result of probing the running kernel once.
type Features struct {
	Kernel string    `json:"kernel"`
	List   []Feature `json:"features"`
}

// Has reports whether the named feature probed OK.
func (f *Features) Has(name string) bool {
	for _, x := range f.List {
		if x.Name == name {
			return x.OK
		}
	}
	return false
}

var (
	probeOnce sync.Once
	probed    *Features
)

// Probe checks what this kernel allows, once per process. Each hook type is
// checked by loading and attaching a trivial program, because configs and
// version numbers lie on hardened kernels (lockdown, no kprobes).
func Probe() *Features {
	probeOnce.Do(func() { probed = probeNow() })
	return probed
}

func probeNow() *Features {
	RaiseMemlock()
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	f := &Features{Kernel: unix.ByteSliceToString(uts.Release[:])}
	add := func(name string, err error) {
		x := Feature{Name: name, OK: err == nil}
		if err != nil {
			x.Detail = err.Error()
			if errors.Is(err, unix.EPERM) {
				// cilium/ebpf suggests MEMLOCK on any EPERM; the limit is
				// already lifted, so the kernel itself refuses the type.
				x.Detail = "refused by the kernel (EPERM): lockdown or a BPF policy forbids this program type"
			}
		}
		f.List = append(f.List, x)
	}

	_, err := btf.LoadKernelSpec()
	add("btf", err)
	add("ringbuf", features.HaveMapType(ebpf.RingBuf))
	add("lru_hash", features.HaveMapType(ebpf.LRUHash))
	add("bounded_loops", features.HaveBoundedLoops())
	add(string(TpBTF), tryTracing(ebpf.AttachTraceRawTp, "sched_switch"))
	add(string(RawTP), tryRawTP())
	add(string(Tracepoint), tryTracepoint())
	add(string(Fentry), tryTracing(ebpf.AttachTraceFEntry, "do_nanosleep"))
	if err := tryKprobe(); errors.Is(err, os.ErrNotExist) {
		add(string(Kprobe), fmt.Errorf("no kprobe support in this kernel (kprobe PMU and kprobe_events missing): %w", err))
	} else {
		add(string(Kprobe), err)
	}
	add(string(Uprobe), haveUprobe())
	add(string(PerfEvent), tryPerfEvent())
	add(string(LSM), tryLSM())
	add(string(CgroupSKB), features.HaveProgramType(ebpf.CGroupSKB))
	add("bpf_stats", tryStats())
	if mode := lockdown(); mode != "" {
		f.List = append(f.List, Feature{Name: "lockdown", OK: mode == "none", Detail: mode})
	}
	return f
}

// lockdown returns the active kernel lockdown mode (none, integrity,
// confidentiality), which explains EPERM on fentry and LSM programs.
func lockdown() string {
	data, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	for _, w := range strings.Fields(string(data)) {
		if strings.HasPrefix(w, "[") {
			return strings.Trim(w, "[]")
		}
	}
	return ""
}

// RaiseMemlock lifts RLIMIT_MEMLOCK for kernels that still charge BPF
// memory against it (before 5.11); newer kernels use memcg accounting.
func RaiseMemlock() {
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
}

var trivial = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}

func tryTracing(at ebpf.AttachType, target string) error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: at, AttachTo: target, Instructions: trivial, License: "GPL"})
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: at})
	if err != nil {
		return err
	}
	return l.Close()
}

func tryRawTP() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, Instructions: trivial, License: "GPL"})
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_switch", Program: p})
	if err != nil {
		return err
	}
	return l.Close()
}

func tryTracepoint() error {
	if err := EnsureTracefs(); err != nil {
		return err
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.TracePoint, Instructions: trivial, License: "GPL"})
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := link.Tracepoint("sched", "sched_switch", p, nil)
	if err != nil {
		return err
	}
	return l.Close()
}

func tryKprobe() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Kprobe, Instructions: trivial, License: "GPL"})
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := link.Kprobe("do_nanosleep", p, nil)
	if err != nil {
		return err
	}
	return l.Close()
}

func tryLSM() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open", Instructions: trivial, License: "GPL"})
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := link.AttachLSM(link.LSMOptions{Program: p})
	if err != nil {
		return err
	}
	return l.Close()
}

// Uprobes are attached per binary; the perf PMU being present is what
// decides whether they can work at all.
func haveUprobe() error {
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err != nil {
		return fmt.Errorf("no uprobe PMU: %w", err)
	}
	return nil
}

// tryPerfEvent attaches a trivial sampling program at 1 Hz to the online
// CPUs, the way a profiler would.
func tryPerfEvent() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.PerfEvent, Instructions: trivial, License: "GPL"})
	if err != nil {
		return err
	}
	defer p.Close()
	links, _, err := attachPerfEvent(p, nil, Hook{Kind: PerfEvent, Sampling: Sampling{Frequency: 1}})
	var errs []error
	for _, l := range links {
		errs = append(errs, l.Close())
	}
	return errors.Join(append(errs, err)...)
}

func tryStats() error {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return err
	}
	return c.Close()
}

// CheckPrivileges returns a clear error when the process lacks what loading
// BPF programs needs.
func CheckPrivileges() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return errors.New("kernel BTF not found at /sys/kernel/btf/vmlinux: vigil needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.8 or newer)")
	}
	var hdr unix.CapUserHeader
	var data [2]unix.CapUserData
	hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return nil
	}
	var missing []string
	if !has(unix.CAP_BPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(unix.CAP_PERFMON) {
		missing = append(missing, "CAP_PERFMON")
	}
	return fmt.Errorf("missing privilege %s: loading eBPF programs needs root, or CAP_BPF and CAP_PERFMON (plus CAP_SYS_ADMIN to mount tracefs); run with sudo", strings.Join(missing, " and "))
}
