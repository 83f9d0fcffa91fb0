package proc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// MaxArgsBytes bounds how much of /proc/<pid>/cmdline is read.
const MaxArgsBytes = 4096

// tickNS is the length of a USER_HZ clock tick in ns. /proc reports start
// times in ticks, truncated from the kernel's ns start_boottime, so a start
// time read from /proc and one taken from a BPF event agree only to a tick.
var tickNS = uint64(1e9) / clockTicks()

// clockTicks returns sysconf(_SC_CLK_TCK) without cgo: the kernel passes it
// as AT_CLKTCK in the auxiliary vector. It is 100 on every Linux we know of.
func clockTicks() uint64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	w := int(unsafe.Sizeof(uintptr(0)))
	for i := 0; i+2*w <= len(b); i += 2 * w {
		var k, v uint64
		if w == 8 {
			k, v = binary.NativeEndian.Uint64(b[i:]), binary.NativeEndian.Uint64(b[i+w:])
		} else {
			k, v = uint64(binary.NativeEndian.Uint32(b[i:])), uint64(binary.NativeEndian.Uint32(b[i+w:]))
		}
		if k == atClkTck && v > 0 && v <= 1e9 {
			return v
		}
	}
	return 100
}

// sameStart reports whether two start times can belong to the same process.
// 0 means unknown and matches anything; otherwise they must agree to the tick.
func sameStart(a, b uint64) bool {
	return a == 0 || b == 0 || a == b || a/tickNS == b/tickNS
}

var errBadStat = errors.New("malformed stat")

// readProcess reads what /proc/<pid> tells about a process. The cgroup id is
// left to the caller, which knows where the cgroup2 hierarchy is mounted.
func readProcess(procRoot string, pid uint32) (Process, error) {
	dir := procRoot + "/" + strconv.FormatUint(uint64(pid), 10)
	p := Process{PID: pid}

	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return p, err
	}
	if err := parseStat(stat, &p); err != nil {
		return p, err
	}
	// Real uid/gid, as bpf_get_current_uid_gid() reports them.
	if status, err := os.ReadFile(dir + "/status"); err == nil {
		p.UID = statusID(status, "Uid:")
		p.GID = statusID(status, "Gid:")
	}
	// Kernel threads have no exe and no cmdline; that is not an error.
	p.Exe, _ = os.Readlink(dir + "/exe")
	if cmd, err := readLimited(dir+"/cmdline", MaxArgsBytes); err == nil {
		p.Args = splitArgs(cmd)
	}
	if cg, err := os.ReadFile(dir + "/cgroup"); err == nil {
		p.Cgroup, p.Container = parseProcCgroup(cg)
	}
	return p, nil
}

// parseStat fills PPID, Comm and StartNS from /proc/<pid>/stat. comm may hold
// spaces and parentheses, so the fields start after the last ')'.
func parseStat(b []byte, p *Process) error {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open || closing+2 > len(b) {
		return errBadStat
	}
	p.Comm = string(b[open+1 : closing])
	// Field 3 (state) is the first after comm; ppid is field 4, starttime 22.
	rest := b[closing+2:]
	for field := 3; field <= 22; field++ {
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		v := rest[:end]
		switch field {
		case 4:
			n, err := strconv.ParseUint(string(v), 10, 32)
			if err != nil {
				return errBadStat
			}
			p.PPID = uint32(n)
		case 22:
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return errBadStat
			}
			p.StartNS = n * tickNS
			return nil
		}
		if end == len(rest) {
			break
		}
		rest = rest[end+1:]
	}
	return errBadStat
}

// statusID returns the first (real) id of a "Uid:" or "Gid:" line.
func statusID(b []byte, key string) uint32 {
	i := bytes.Index(b, []byte("\n"+key))
	if i < 0 {
		return 0
	}
	line := b[i+1+len(key):]
	line = bytes.TrimLeft(line, " \t")
	end := bytes.IndexAny(line, " \t\n")
	if end < 0 {
		end = len(line)
	}
	n, err := strconv.ParseUint(string(line[:end]), 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

func readLimited(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return buf[:m], nil
}

// splitArgs splits a NUL-separated cmdline. Arguments share one string.
func splitArgs(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	args := make([]string, 0, bytes.Count(b, []byte{0})+1)
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return append(args, s)
		}
		args = append(args, s[:i])
		s = s[i+1:]
	}
}

// Describes reports whether cache entry p describes a task seen by the
// kernel now: the same process (pid and start time, one clock tick either
// way), and for a process's main thread the same program. A main thread
// whose comm differs from the entry's has exec'd a program the cache has not
// heard of yet (its exec record is still on its way), so the entry's
// executable is the previous program's. Other threads may name themselves.
func (p Process) Describes(pid, tid uint32, startNS uint64, comm string) bool {
	if p.PID != pid {
		return false
	}
	if p.StartNS != 0 && startNS != 0 {
		if d := int64(p.StartNS/tickNS) - int64(startNS/tickNS); d < -1 || d > 1 {
			return false
		}
	}
	return tid != pid || p.Comm == "" || comm == "" || p.Comm == comm
}
