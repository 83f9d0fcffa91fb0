package l7

// TLS plaintext of Go programs (tls_go.bpf.h): for every Go executable that
// runs, the entries of crypto/tls.(*Conn).Read and .Write and every RET
// instruction of Read get a uprobe; the RETs are found by disassembling the
// function (internal/gobin), since a uretprobe would crash the program.

import (
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/gobin"
	"github.com/vigilproject/vigil/internal/kernel"
)

const (
	goTLSRead  = "crypto/tls.(*Conn).Read"
	goTLSWrite = "crypto/tls.(*Conn).Write"

	goTLSEntryProg = "uprobe_go_tls_entry"
	goTLSRetProg   = "uprobe_go_tls_ret"
)

// The walk from a *tls.Conn to its fd, the same in every Go release from
// 1.17 to 1.26 on 64-bit (TestGoTLSOffsets checks them in the DWARF of
// builds by the current and an older toolchain):
//
//	crypto/tls.Conn.conn   net.Conn interface, first field: (itab, data)
//	net.TCPConn.conn.fd    *net.netFD, first word of the TCPConn
//	net.netFD.pfd.Sysfd    pfd (internal/poll.FD) first, Sysfd after its
//	                       16-byte fdMutex
const (
	goTLSConnConnOff = 0
	goTCPConnFDOff   = 0
	goNetFDSysfdOff  = 16
)

// goTCPConnItab are the methods of the (*net.TCPConn, net.Conn) itab that
// identify it, in net.Conn's method order: Read and Write, which crypto/tls
// calls; the linker may leave the others unreachable.
var goTCPConnItab = []string{"", "", "net.(*TCPConn).Read", "", "", "", "", "net.(*TCPConn).Write"}

// goTLSConstants are the knobs of tls_go.bpf.h.
func goTLSConstants() map[string]any {
	return map[string]any{
		"go_tls_conn_conn_off": uint32(goTLSConnConnOff),
		"go_tcpconn_fd_off":    uint32(goTCPConnFDOff),
		"go_netfd_sysfd_off":   uint32(goNetFDSysfdOff),
	}
}

// goTLSPrograms are loaded after Load, once per Go binary found.
var goTLSPrograms = []string{goTLSEntryProg, goTLSRetProg}

const (
	maxGoBinaries   = 256  // Go executables with probes attached
	maxGoInspected  = 8192 // executables remembered as inspected
	cookieDirShift  = 56
	cookieDeltaMask = 1<<cookieDirShift - 1
)

// Results of inspecting an executable (label of vigil_l7_go_tls_binaries_total).
const (
	goAttached    = "attached"
	goNotGo       = "not_go"
	goNoTLS       = "no_tls"      // Go, without crypto/tls over *net.TCPConn
	goUnsupported = "unsupported" // before Go 1.17 (stack ABI) or not x86-64
	goError       = "error"       // unreadable, undecodable, or the attach failed
)

// goTLS attaches the Go TLS uprobes to the executables of processes. It
// remembers each executable (device, inode) it inspected, bounded.
type goTLS struct {
	log        *slog.Logger
	procRoot   string
	self       int
	entry, ret *kernel.UprobeSet
	counters   *ebpf.Map

	mu        sync.Mutex
	inspected map[goFileID]string
	results   map[string]uint64
}

type goFileID struct{ dev, ino uint64 }

func newGoTLS(p *Probe, procRoot string, self int) (*goTLS, error) {
	g := &goTLS{log: p.Env.Log, procRoot: procRoot, self: self, counters: p.Obj.Maps["go_tls_counters"],
		inspected: map[goFileID]string{}, results: map[string]uint64{}}
	if g.counters == nil {
		return nil, errors.New("BPF object has no go_tls_counters map")
	}
	var err error
	if g.ret, err = p.NewUprobeSet(kernel.UprobeSetOptions{Name: "go_tls_return", Program: goTLSRetProg, MaxBinaries: maxGoBinaries}); err != nil {
		return nil, err
	}
	if g.entry, err = p.NewUprobeSet(kernel.UprobeSetOptions{Name: "go_tls_entry", Program: goTLSEntryProg, MaxBinaries: maxGoBinaries}); err != nil {
		return nil, err
	}
	p.Register(g)
	return g, nil
}

// inspect attaches the probes to pid's executable if it is a Go program
// using crypto/tls, once per file. Processes that are gone or have no
// executable (kernel threads) are ignored.
func (g *goTLS) inspect(pid int) {
	if pid == g.self {
		return
	}
	exe := fmt.Sprintf("%s/%d/exe", g.procRoot, pid)
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		return
	}
	id := goFileID{dev: st.Dev, ino: st.Ino}
	g.mu.Lock()
	_, done := g.inspected[id]
	g.mu.Unlock()
	if done {
		return
	}
	result, err := g.attach(exe)
	switch {
	case err != nil && result == goError:
		g.log.Warn("l7: Go TLS probes not attached", "pid", pid, "err", err)
	case result == goAttached || result == goUnsupported:
		target, _ := os.Readlink(exe)
		g.log.Debug("l7: Go TLS", "result", result, "pid", pid, "exe", target, "err", err)
	}
	g.mu.Lock()
	if len(g.inspected) >= maxGoInspected {
		clear(g.inspected) // bounded: forget, and re-inspect on next sight
	}
	g.inspected[id] = result
	g.results[result]++
	g.mu.Unlock()
}

// attach places the probes in the executable at path; the result says what
// the file is when the probes are not placed.
func (g *goTLS) attach(path string) (string, error) {
	b, err := gobin.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.Is(err, gobin.ErrNotGo) || errors.As(err, &fe) {
			return goNotGo, nil
		}
		return goError, err
	}
	defer b.Close()
	if !b.AtLeast(1, 17) || b.Arch() != elf.EM_X86_64 {
		return goUnsupported, fmt.Errorf("%s: %s on %s: the probes need Go 1.17 or later (register ABI) on x86-64", path, b.GoVersion, b.Arch())
	}
	if _, err := b.Func(goTLSRead); err != nil {
		return goNoTLS, nil
	}
	itab, err := b.Itab(goTCPConnItab)
	if err != nil {
		return goNoTLS, nil
	}
	// Cookies: the direction, and the itab's distance from the probed
	// instruction, which the program adds to the instruction's run-time
	// address (position-independent binaries load anywhere).
	cookie := func(dir, at uint64) uint64 { return dir<<cookieDirShift | (itab-at)&cookieDeltaMask }
	var entries, rets []kernel.UprobeAt
	for dir, name := range map[uint64]string{dirRead: goTLSRead, dirWrite: goTLSWrite} {
		fn, err := b.Func(name)
		if err != nil {
			return goNoTLS, nil
		}
		off, err := b.FileOffset(fn.Entry)
		if err != nil {
			return goError, err
		}
		entries = append(entries, kernel.UprobeAt{Offset: off, Cookie: cookie(dir, fn.Entry)})
		if dir == dirWrite {
			continue // streamed at entry
		}
		addrs, err := b.Returns(fn)
		if err != nil {
			return goError, err
		}
		for _, a := range addrs {
			off, err := b.FileOffset(a)
			if err != nil {
				return goError, err
			}
			rets = append(rets, kernel.UprobeAt{Offset: off, Cookie: cookie(dir, a)})
		}
	}
	// Returns first: a RET whose entry is not probed yet only counts a
	// miss, an entry without its RETs would leave calls behind.
	if _, err := g.ret.AddOffsets(path, rets); err != nil {
		return goError, err
	}
	if _, err := g.entry.AddOffsets(path, entries); err != nil {
		return goError, err
	}
	return goAttached, nil
}

// GoTLSCounters are the Go TLS probes' kernel totals.
type GoTLSCounters struct {
	NoEntry   uint64 // a Read RET with no saved entry: attached mid-call, or evicted
	NotTCP    uint64 // a tls.Conn not over a *net.TCPConn, skipped
	UnknownFD uint64 // a TCP fd not in the connection table, skipped
	ReadFault uint64 // Go memory the kernel could not read
	Records   uint64 // plaintext records emitted
}

// Kernel counters, as the G_* indexes in tls_go.bpf.h.
const (
	gNoEntry = iota
	gNotTCP
	gUnknownFD
	gReadFault
	gRecords
	gMax
)

func (g *goTLS) read() (GoTLSCounters, error) {
	var v [gMax]uint64
	if err := kernel.ReadCounters(g.counters, v[:]); err != nil {
		return GoTLSCounters{}, err
	}
	return GoTLSCounters{NoEntry: v[gNoEntry], NotTCP: v[gNotTCP], UnknownFD: v[gUnknownFD], ReadFault: v[gReadFault], Records: v[gRecords]}, nil
}

// GoTLSCounters reads the Go TLS probes' kernel counters.
func (p *Probe) GoTLSCounters() (GoTLSCounters, error) {
	if p.goTLS == nil {
		return GoTLSCounters{}, errors.New("the Go TLS probes are not running")
	}
	return p.goTLS.read()
}

var (
	goTLSBinariesDesc = prometheus.NewDesc("vigil_l7_go_tls_binaries_total",
		"Executables inspected for the Go TLS probes, by result: attached, not_go, no_tls (Go without crypto/tls over TCP), unsupported (before Go 1.17 or not x86-64), error.",
		[]string{"result"}, nil)
	goTLSSkippedDesc = prometheus.NewDesc("vigil_l7_go_tls_skipped_total",
		"Go crypto/tls calls whose plaintext was not captured, by reason: no_entry (return without a probed entry), not_tcp (not over a *net.TCPConn), unknown_fd (a connection the table does not hold), read_fault.",
		[]string{"reason"}, nil)
	goTLSRecordsDesc = prometheus.NewDesc("vigil_l7_go_tls_records_total",
		"Plaintext records of Go crypto/tls calls.", nil, nil)
)

// Describe implements prometheus.Collector.
func (g *goTLS) Describe(ch chan<- *prometheus.Desc) {
	ch <- goTLSBinariesDesc
	ch <- goTLSSkippedDesc
	ch <- goTLSRecordsDesc
}

// Collect implements prometheus.Collector.
func (g *goTLS) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	res := maps.Clone(g.results)
	g.mu.Unlock()
	for _, r := range []string{goAttached, goNotGo, goNoTLS, goUnsupported, goError} {
		res[r] += 0
	}
	for _, r := range slices.Sorted(maps.Keys(res)) {
		ch <- prometheus.MustNewConstMetric(goTLSBinariesDesc, prometheus.CounterValue, float64(res[r]), r)
	}
	c, err := g.read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(goTLSSkippedDesc, err)
		return
	}
	for r, v := range map[string]uint64{"no_entry": c.NoEntry, "not_tcp": c.NotTCP, "unknown_fd": c.UnknownFD, "read_fault": c.ReadFault} {
		ch <- prometheus.MustNewConstMetric(goTLSSkippedDesc, prometheus.CounterValue, float64(v), r)
	}
	ch <- prometheus.MustNewConstMetric(goTLSRecordsDesc, prometheus.CounterValue, float64(c.Records))
}
