package l7

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/kernel"
)

// TLSConfig is probes.l7.tls: plaintext from TLS libraries.
type TLSConfig struct {
	// OpenSSL streams the plaintext of SSL_read/SSL_write (and _ex) in
	// libssl and in binaries that export them (OpenSSL or BoringSSL linked
	// statically).
	OpenSSL bool `yaml:"openssl"`
	// Go streams the plaintext of crypto/tls.(*Conn).Read/Write in Go
	// programs (uprobes at the entry and at each RET, never uretprobes).
	Go bool `yaml:"go"`
	// RescanInterval is how often /proc is listed for processes not seen
	// before, whose libraries may need attaching.
	RescanInterval time.Duration `yaml:"rescan_interval"`
	// MaxBinaries bounds the libraries and binaries attached (per function).
	MaxBinaries int `yaml:"max_binaries"`
}

func (c *TLSConfig) validate() error {
	if c.RescanInterval < 500*time.Millisecond || c.RescanInterval > time.Minute {
		return fmt.Errorf("tls.rescan_interval: %v must be between 500ms and 1m", c.RescanInterval)
	}
	if c.MaxBinaries < 1 || c.MaxBinaries > 1024 {
		return fmt.Errorf("tls.max_binaries: %d must be between 1 and 1024", c.MaxBinaries)
	}
	return nil
}

// opensslFuncs are the library functions probed and the BPF programs run
// at their entry; ssl_ret runs at the return of each.
var opensslFuncs = []struct{ symbol, enter string }{
	{"SSL_read", "ssl_read_enter"},
	{"SSL_read_ex", "ssl_read_ex_enter"},
	{"SSL_write", "ssl_write_enter"},
	{"SSL_write_ex", "ssl_write_ex_enter"},
}

const opensslReturn = "ssl_ret"

// opensslFree runs at the entry of SSL_free, which drops the SSL's last fd.
const opensslFree = "ssl_free_enter"

// opensslPrograms are the programs the object keeps for the uprobe sets.
func opensslPrograms() []string {
	out := []string{opensslReturn, opensslFree}
	for _, f := range opensslFuncs {
		out = append(out, f.enter)
	}
	return out
}

// maxInspected bounds the verdict cache (files are read again once it is
// cleared).
const maxInspected = 4096

// opensslHooks attaches the TLS programs to every libssl (or binary that
// exports SSL_read) the processes map. Each file is read once, keyed by the
// (device, inode) /proc/PID/maps names it with.
type opensslHooks struct {
	proc  string
	enter []*kernel.UprobeSet // by opensslFuncs
	ret   []*kernel.UprobeSet
	free  *kernel.UprobeSet
	log   func(msg string, args ...any)

	mu        sync.Mutex
	inspected map[fileKey]bool // true: attached (or tried and failed)
	skipped   map[string]uint64
}

type fileKey struct{ dev, ino uint64 }

// startOpenSSL makes the uprobe sets and plugs the library search into the
// process discovery.
func (p *Probe) startOpenSSL(procRoot string) error {
	h := &opensslHooks{proc: procRoot, inspected: map[fileKey]bool{}, skipped: map[string]uint64{}}
	h.log = func(msg string, args ...any) { p.Env.Log.Debug(msg, args...) }
	for _, f := range opensslFuncs {
		ret, err := p.NewUprobeSet(kernel.UprobeSetOptions{Name: f.symbol + ":return", Program: opensslReturn,
			Symbol: f.symbol, Return: true, MaxBinaries: p.cfg.TLS.MaxBinaries})
		if err != nil {
			return err
		}
		enter, err := p.NewUprobeSet(kernel.UprobeSetOptions{Name: f.symbol, Program: f.enter,
			Symbol: f.symbol, MaxBinaries: p.cfg.TLS.MaxBinaries})
		if err != nil {
			return err
		}
		h.ret, h.enter = append(h.ret, ret), append(h.enter, enter)
	}
	free, err := p.NewUprobeSet(kernel.UprobeSetOptions{Name: "SSL_free", Program: opensslFree,
		Symbol: "SSL_free", MaxBinaries: p.cfg.TLS.MaxBinaries})
	if err != nil {
		return err
	}
	h.free = free
	p.openssl = h
	p.disc.OnProcess(h.process)
	p.Register(&tlsCollector{p: p})
	return nil
}

// Binaries is the number of files whose SSL_read or SSL_write is probed.
func (h *opensslHooks) Binaries() int {
	n := 0
	for i, f := range opensslFuncs {
		if f.symbol == "SSL_read" || f.symbol == "SSL_write" {
			n = max(n, h.enter[i].Len())
		}
	}
	return n
}

// process finds the TLS libraries pid maps and attaches to new ones.
func (h *opensslHooks) process(pid int) {
	maps, err := os.Open(filepath.Join(h.proc, strconv.Itoa(pid), "maps"))
	if err != nil {
		return // gone, or a kernel thread
	}
	defer maps.Close()
	exe, _ := os.Readlink(filepath.Join(h.proc, strconv.Itoa(pid), "exe"))
	sc := bufio.NewScanner(maps)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	var last fileKey
	for sc.Scan() {
		m, ok := parseMapsLine(sc.Text())
		if !ok || m.key == last || !strings.Contains(m.perms, "x") {
			continue
		}
		last = m.key
		if !candidate(m.path, exe) {
			continue
		}
		h.mu.Lock()
		done := h.inspected[m.key]
		if !done {
			if len(h.inspected) >= maxInspected {
				clear(h.inspected)
			}
			h.inspected[m.key] = true
		}
		h.mu.Unlock()
		if !done {
			h.inspect(pid, m)
		}
	}
}

// candidate: a file named like OpenSSL's or BoringSSL's library, or the
// process's own executable (OpenSSL linked statically).
func candidate(path, exe string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "libssl") || strings.Contains(base, "boringssl") || path == exe
}

// inspect reads the file's symbols and attaches to the functions it has.
func (h *opensslHooks) inspect(pid int, m mapping) {
	path, err := h.resolve(pid, m)
	if err != nil {
		// Often the process left meanwhile: another one mapping the
		// same file tries again.
		h.mu.Lock()
		delete(h.inspected, m.key)
		h.mu.Unlock()
		h.skip("unreadable", m.path, err)
		return
	}
	have, err := tlsSymbols(path)
	if err != nil {
		h.skip("not_elf", path, err)
		return
	}
	if !have["SSL_read"] && !have["SSL_write"] {
		return // an executable without TLS (most are): nothing to say
	}
	attached := false
	// SSL_free first: an SSL pointer must not outlive its object in the
	// kernel's SSL -> fd map once calls are followed.
	if have["SSL_free"] {
		if _, err := h.free.Add(path); err != nil {
			h.skip("attach", path, err)
			return
		}
	}
	for i, f := range opensslFuncs {
		if !have[f.symbol] {
			continue
		}
		// The return first: an entry probe without it would leave a
		// call open on the thread.
		if _, err := h.ret[i].Add(path); err != nil {
			h.skip("attach", path, err)
			continue
		}
		if _, err := h.enter[i].Add(path); err != nil {
			h.skip("attach", path, err)
			continue
		}
		attached = true
	}
	if attached {
		h.log("l7: OpenSSL uprobes attached", "binary", path, "pid", pid)
	}
}

func (h *opensslHooks) skip(reason, path string, err error) {
	h.mu.Lock()
	h.skipped[reason]++
	h.mu.Unlock()
	h.log("l7: TLS library not probed", "binary", path, "reason", reason, "err", err)
}

// resolve names the mapped file in the agent's mount namespace: its path
// when that is the same file, else through the process's root (a
// container's file system).
func (h *opensslHooks) resolve(pid int, m mapping) (string, error) {
	var st unix.Stat_t
	if unix.Stat(m.path, &st) == nil && st.Dev == m.key.dev && st.Ino == m.key.ino {
		return m.path, nil
	}
	p := filepath.Join(h.proc, strconv.Itoa(pid), "root", m.path)
	if err := unix.Stat(p, &st); err != nil {
		return "", err
	}
	return p, nil
}

// tlsSymbols lists which of the probed functions (and SSL_free) the ELF
// file at path defines (dynamic symbols first, then .symtab). Go binaries are left to
// the Go TLS probe: they get no uretprobe.
func tlsSymbols(path string) (map[string]bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Section(".go.buildinfo") != nil || f.Section(".gopclntab") != nil {
		return nil, nil
	}
	want := map[string]bool{"SSL_free": true}
	for _, fn := range opensslFuncs {
		want[fn.symbol] = true
	}
	have := map[string]bool{}
	for _, read := range []func() ([]elf.Symbol, error){f.DynamicSymbols, f.Symbols} {
		syms, err := read()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return nil, err
		}
		for _, s := range syms {
			if want[s.Name] && s.Value != 0 && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				have[s.Name] = true
			}
		}
		if have["SSL_read"] || have["SSL_write"] {
			break
		}
	}
	return have, nil
}

// mapping is one line of /proc/PID/maps.
type mapping struct {
	perms string
	key   fileKey
	path  string
}

// parseMapsLine parses "start-end perms offset major:minor inode path";
// lines without a file (anonymous, [heap]) or with a deleted one are not.
func parseMapsLine(line string) (mapping, bool) {
	var m mapping
	f := strings.Fields(line)
	if len(f) < 6 || !strings.HasPrefix(f[5], "/") || f[len(f)-1] == "(deleted)" {
		return m, false
	}
	majS, minS, ok := strings.Cut(f[3], ":")
	if !ok {
		return m, false
	}
	maj, err1 := strconv.ParseUint(majS, 16, 32)
	mnr, err2 := strconv.ParseUint(minS, 16, 32)
	ino, err3 := strconv.ParseUint(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || ino == 0 {
		return m, false
	}
	m.perms = f[1]
	m.key = fileKey{dev: unix.Mkdev(uint32(maj), uint32(mnr)), ino: ino}
	m.path = strings.Join(f[5:], " ")
	return m, true
}

// TLS counters, as the TC_* indexes in tls_openssl.bpf.h.
const (
	tcRecords = iota
	tcUnknownConn
	tcStateFull
	tcMax
)

// TLSCounters are the TLS library programs' totals since start.
type TLSCounters struct {
	Records     uint64 // plaintext records emitted
	UnknownConn uint64 // calls that moved bytes on no learnt connection
	StateFull   uint64 // calls not followed: no task storage
}

// ReadTLSCounters sums the per-CPU TLS counters.
func (p *Probe) ReadTLSCounters() (TLSCounters, error) {
	var vals [tcMax]uint64
	if err := kernel.ReadCounters(p.maps.TLSCounters, vals[:]); err != nil {
		return TLSCounters{}, err
	}
	return TLSCounters{Records: vals[tcRecords], UnknownConn: vals[tcUnknownConn], StateFull: vals[tcStateFull]}, nil
}

var (
	tlsRecordsDesc = prometheus.NewDesc("vigil_l7_tls_records_total",
		"conn_data records of TLS plaintext, by library.", []string{"library"}, nil)
	tlsUnknownDesc = prometheus.NewDesc("vigil_l7_tls_calls_unknown_connection_total",
		"TLS library calls that moved bytes on a connection the probe does not track (opened before the probe and not seeded, not TCP, evicted, or the fd never seen in a syscall), so nothing was emitted.",
		[]string{"library"}, nil)
	tlsMissedDesc = prometheus.NewDesc("vigil_l7_tls_calls_missed_total",
		"TLS library calls not followed because the kernel could not allocate the thread's call state (task storage).", []string{"library"}, nil)
	tlsBinariesDesc = prometheus.NewDesc("vigil_l7_tls_binaries",
		"Libraries and binaries whose TLS read/write functions are probed, by library.", []string{"library"}, nil)
	tlsSkippedDesc = prometheus.NewDesc("vigil_l7_tls_binaries_skipped_total",
		"TLS library files found mapped but not probed, by reason: unreadable (not found from the agent), not_elf, attach (refused or the set is full: max_binaries).",
		[]string{"reason"}, nil)
)

type tlsCollector struct{ p *Probe }

func (c *tlsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tlsRecordsDesc, tlsUnknownDesc, tlsMissedDesc, tlsBinariesDesc, tlsSkippedDesc} {
		ch <- d
	}
}

func (c *tlsCollector) Collect(ch chan<- prometheus.Metric) {
	n, err := c.p.ReadTLSCounters()
	if err != nil {
		c.p.Env.Log.Warn("reading l7 TLS counters", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(tlsRecordsDesc, prometheus.CounterValue, float64(n.Records), "openssl")
	ch <- prometheus.MustNewConstMetric(tlsUnknownDesc, prometheus.CounterValue, float64(n.UnknownConn), "openssl")
	ch <- prometheus.MustNewConstMetric(tlsMissedDesc, prometheus.CounterValue, float64(n.StateFull), "openssl")
	h := c.p.openssl
	ch <- prometheus.MustNewConstMetric(tlsBinariesDesc, prometheus.GaugeValue, float64(h.Binaries()), "openssl")
	h.mu.Lock()
	skipped := map[string]uint64{"unreadable": h.skipped["unreadable"], "not_elf": h.skipped["not_elf"], "attach": h.skipped["attach"]}
	h.mu.Unlock()
	for _, r := range []string{"attach", "not_elf", "unreadable"} {
		ch <- prometheus.MustNewConstMetric(tlsSkippedDesc, prometheus.CounterValue, float64(skipped[r]), r)
	}
}
