package l7

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/proc"
)

// TestProcessContextKernel checks the process context of a record against
// what /proc and the system calls report for the thread that wrote: the
// data path fills it with BTF loads, not vigil_fill_proc.
func TestProcessContextKernel(t *testing.T) {
	_, s := startProbe(t, DefaultConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, server := pair(t, ln)
	defer client.Close()
	defer server.Close()
	cfd := connFD(t, client)

	// Write from a thread of our own with a name of its own: the record's
	// comm is the thread's, its tid this thread's.
	const name = "l7ctx-writer"
	type result struct {
		tid int
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // the thread dies with the goroutine: its name goes with it
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(unsafe.StringData(name+"\x00"))), 0, 0, 0); err != nil {
			done <- result{err: err}
			return
		}
		_, err := unix.Write(int(cfd), []byte("ping"))
		done <- result{tid: unix.Gettid(), err: err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	evs := waitEvents(t, s, "the named thread's write", func(evs []*ConnData) bool {
		for _, e := range evs {
			if e.TID == uint32(r.tid) {
				return true
			}
		}
		return false
	})
	var e *ConnData
	for _, x := range evs {
		if x.TID == uint32(r.tid) {
			e = x
		}
	}
	ppid := os.Getppid()
	parentComm := readTrim(t, fmt.Sprintf("/proc/%d/comm", ppid))
	if e.PID != uint32(os.Getpid()) || e.PPID != uint32(ppid) || e.Comm != name || e.ParentComm != parentComm ||
		e.UID != uint32(os.Getuid()) || e.GID != uint32(os.Getgid()) || e.Direction != "write" || !bytes.Equal(e.Data, []byte("ping")) {
		t.Fatalf("got pid %d tid %d ppid %d comm %q parent %q uid %d gid %d %s %q; want pid %d tid %d ppid %d comm %q parent %q uid %d gid %d write \"ping\"",
			e.PID, e.TID, e.PPID, e.Comm, e.ParentComm, e.UID, e.GID, e.Direction, e.Data,
			os.Getpid(), r.tid, ppid, name, parentComm, os.Getuid(), os.Getgid())
	}
	// /proc/self/stat field 22: start_boottime in clock ticks (USER_HZ 100).
	stat := readTrim(t, "/proc/self/stat")
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+2:])
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if e.StartNS/1e7 != ticks {
		t.Fatalf("start_ns %d is %d ticks, /proc/self/stat says %d", e.StartNS, e.StartNS/1e7, ticks)
	}
	// The cgroup v2 id is the inode number of the cgroup's directory (the
	// "0::" line; on hybrid hosts the v2 tree is under unified/).
	root := proc.Cgroup2Root("/sys/fs/cgroup")
	var rel string
	for _, l := range strings.Split(readTrim(t, "/proc/self/cgroup"), "\n") {
		if r, ok := strings.CutPrefix(l, "0::"); ok {
			rel = r
		}
	}
	if !proc.IsCgroup2(root) || rel == "" {
		t.Logf("no cgroup v2 hierarchy: cgroup id unchecked")
		return
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, rel), &st); err != nil {
		t.Fatal(err)
	}
	if e.CgroupID != st.Ino {
		t.Fatalf("cgroup_id %d, inode of %s is %d", e.CgroupID, filepath.Join(root, rel), st.Ino)
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// mmsghdr is struct mmsghdr on amd64: a msghdr and the bytes it moved.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// mmsgs builds an mmsghdr array whose message i gathers or scatters bufs[i].
func mmsgs(bufs [][][]byte) []mmsghdr {
	msgs := make([]mmsghdr, len(bufs))
	for i, parts := range bufs {
		iov := make([]unix.Iovec, len(parts))
		for j, b := range parts {
			iov[j].Base = &b[0]
			iov[j].SetLen(len(b))
		}
		msgs[i].hdr.Iov = &iov[0]
		msgs[i].hdr.SetIovlen(len(iov))
	}
	return msgs
}

func mmsgCall(nr uintptr, fd int, msgs []mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	runtime.KeepAlive(msgs)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// TestMmsgKernel sends six messages with one sendmmsg and receives three
// with one recvmmsg on a TCP connection: the first four (MAX_MMSG) of the
// send and all three received are records of their own with exact lengths
// and bytes, scattered and gathered across iovecs; the two messages past
// the bound are counted.
func TestMmsgKernel(t *testing.T) {
	p, s := startProbe(t, DefaultConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, server := pair(t, ln)
	defer client.Close()
	defer server.Close()
	cfd, sfd := connFD(t, client), connFD(t, server)

	out := [][][]byte{
		{[]byte("GET /mmsg "), []byte("HTTP/1.1\r\n")},
		{[]byte("Host: x\r\n")},
		{[]byte("\r\n")},
		{[]byte("four-"), []byte("in-"), []byte("three")},
		{[]byte("fifth")},
		{[]byte("sixth!")},
	}
	var all []byte
	for _, m := range out {
		all = append(all, bytes.Join(m, nil)...)
	}
	sent := rawIO(t, client, false, func(fd int) (int, error) { return mmsgCall(unix.SYS_SENDMMSG, fd, mmsgs(out)) })
	if sent != len(out) {
		t.Fatalf("sendmmsg sent %d messages, want %d", sent, len(out))
	}
	// Wait for every byte to be queued at the server, so that one
	// recvmmsg fills all three messages.
	in := [][][]byte{
		{make([]byte, 7), make([]byte, 13)}, // "GET /mmsg HTTP/1.1\r\n" scattered
		{make([]byte, 9)},
		{make([]byte, 100)},
	}
	queued := func() int {
		n, err := unix.IoctlGetInt(int(sfd), unix.SIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := 0; queued() < len(all) && i < 500; i++ {
		runtime.Gosched()
	}
	var msgs []mmsghdr
	got := rawIO(t, server, true, func(fd int) (int, error) {
		msgs = mmsgs(in)
		return mmsgCall(unix.SYS_RECVMMSG, fd, msgs)
	})
	if got != 3 || msgs[0].len != 20 || msgs[1].len != 9 || int(msgs[2].len) != len(all)-29 {
		t.Fatalf("recvmmsg: %d messages, lengths %d %d %d; want 3: 20 9 %d", got, msgs[0].len, msgs[1].len, msgs[2].len, len(all)-29)
	}

	wantSent := [][]byte{[]byte("GET /mmsg HTTP/1.1\r\n"), []byte("Host: x\r\n"), []byte("\r\n"), []byte("four-in-three")}
	wantRecv := [][]byte{[]byte("GET /mmsg HTTP/1.1\r\n"), []byte("Host: x\r\n"), all[29:]}
	evs := waitEvents(t, s, "the mmsg records", func(evs []*ConnData) bool {
		return len(find(evs, cfd, genOf(evs, cfd), "write")) >= len(wantSent) && len(find(evs, sfd, genOf(evs, sfd), "read")) >= len(wantRecv)
	})
	check := func(recs []*ConnData, sc string, want [][]byte) {
		t.Helper()
		if len(recs) != len(want) {
			t.Fatalf("%s: %d records, want %d", sc, len(recs), len(want))
		}
		for i, e := range recs {
			if e.Syscall != sc || e.Length != uint64(len(want[i])) || !bytes.Equal(e.Data, want[i]) || e.Truncated {
				t.Fatalf("%s record %d: %s length %d %q truncated %v; want length %d %q", sc, i, e.Syscall, e.Length, e.Data, e.Truncated, len(want[i]), want[i])
			}
		}
	}
	check(find(evs, cfd, genOf(evs, cfd), "write"), "sendmmsg", wantSent)
	check(find(evs, sfd, genOf(evs, sfd), "read"), "recvmmsg", wantRecv)
	c, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if c.MmsgSkipped != 2 {
		t.Fatalf("mmsg messages skipped: %d, want 2 (fifth and sixth)", c.MmsgSkipped)
	}
}
