package l7

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// Connections open before the probe started are seeded from /proc: every
// established TCP socket a process holds, with its addresses from the
// process's own network namespace table. Their role is server when the
// local port is one that namespace listens on, client otherwise; records
// carry seeded=true, and their generations have the top bit set (the
// kernel counts the others from 1). The kernel adopts the socket's file at
// the first call that moves bytes.

const (
	flagSeeded   = 2 // F_SEEDED
	seededGenBit = uint64(1) << 63
	tcpEstab     = "01"
	tcpListen    = "0A"
)

// sockEntry is one row of /proc/<pid>/net/tcp{,6}.
type sockEntry struct {
	family       uint16
	saddr, daddr [16]byte
	sport, dport uint16
	state        string
}

// netTable is one network namespace's TCP sockets by inode, and the local
// ports it listens on.
type netTable struct {
	byInode   map[uint64]sockEntry
	listening map[uint16]bool
}

// parseProcNet reads /proc/<pid>/net/tcp or tcp6 into t.
func parseProcNet(path string, family uint16, t *netTable) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // header
		}
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			return fmt.Errorf("%s: line %d: %d fields", path, line, len(fs))
		}
		e := sockEntry{family: family, state: fs[3]}
		var ok1, ok2 bool
		e.saddr, e.sport, ok1 = parseHexAddr(fs[1])
		e.daddr, e.dport, ok2 = parseHexAddr(fs[2])
		inode, err := strconv.ParseUint(fs[9], 10, 64)
		if !ok1 || !ok2 || err != nil {
			return fmt.Errorf("%s: line %d: cannot parse %q", path, line, sc.Text())
		}
		if e.state == tcpListen {
			t.listening[e.sport] = true
		}
		if e.state == tcpEstab && inode != 0 {
			t.byInode[inode] = e
		}
	}
	return sc.Err()
}

// parseHexAddr parses "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6): each 32-bit word is printed in host (little-endian) order.
func parseHexAddr(s string) (addr [16]byte, port uint16, ok bool) {
	a, p, found := strings.Cut(s, ":")
	if !found || (len(a) != 8 && len(a) != 32) {
		return addr, 0, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return addr, 0, false
	}
	for w := 0; w+4 <= len(raw); w += 4 {
		addr[w], addr[w+1], addr[w+2], addr[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	pv, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return addr, 0, false
	}
	return addr, uint16(pv), true
}

// seed inserts the established TCP connections processes hold now into
// the kernel's table, up to max_connections, and returns how many it
// inserted. procRoot is /proc (tests may point elsewhere).
func (p *Probe) seed(procRoot string, self uint32) (int, error) {
	want := map[uint32]bool{}
	for _, pid := range p.cfg.PIDs {
		want[pid] = true
	}
	dirs, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, err
	}
	tables := map[string]*netTable{} // by network namespace link
	var gen uint64
	n := 0
	for _, d := range dirs {
		pid64, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil {
			continue
		}
		pid := uint32(pid64)
		if pid == self || (len(want) > 0 && !want[pid]) {
			continue
		}
		base := filepath.Join(procRoot, d.Name())
		fds, err := os.ReadDir(filepath.Join(base, "fd"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		var t *netTable
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(base, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			if t == nil {
				if t, err = p.netTableOf(base, tables); err != nil {
					break
				}
			}
			e, ok := t.byInode[inode]
			if !ok {
				continue
			}
			fdNum, err := strconv.ParseUint(fd.Name(), 10, 32)
			if err != nil {
				continue
			}
			if n >= int(p.cfg.MaxConnections) {
				return n, nil
			}
			gen++
			ci := l7ConnInfo{Generation: seededGenBit | gen, Saddr: e.saddr, Daddr: e.daddr,
				Sport: e.sport, Dport: e.dport, Family: e.family, Role: roleClient, Flags: flagSeeded}
			if t.listening[e.sport] {
				ci.Role = roleServer
			}
			key := l7ConnKey{Tgid: pid, Fd: uint32(fdNum)}
			// NoExist: a connection the kernel learnt meanwhile wins.
			if err := p.maps.Conns.Update(&key, &ci, ebpf.UpdateNoExist); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// netTableOf returns the TCP table of the process's network namespace,
// read once per namespace.
func (p *Probe) netTableOf(base string, tables map[string]*netTable) (*netTable, error) {
	ns, err := os.Readlink(filepath.Join(base, "ns", "net"))
	if err != nil {
		return nil, err
	}
	if t := tables[ns]; t != nil {
		return t, nil
	}
	t := &netTable{byInode: map[uint64]sockEntry{}, listening: map[uint16]bool{}}
	if err := parseProcNet(filepath.Join(base, "net", "tcp"), afInet, t); err != nil {
		return nil, err
	}
	if err := parseProcNet(filepath.Join(base, "net", "tcp6"), afInet6, t); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	tables[ns] = t
	return t, nil
}
