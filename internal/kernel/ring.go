package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// RingPollInterval bounds how long a record may wait in a ring buffer when
// its producer asked for no wakeup (BPF_RB_NO_WAKEUP): pending records are
// collected at least this often.
const RingPollInterval = 50 * time.Millisecond

// RingColdAfter is how long after its last wakeup a producer following
// bpf/include/vigil_ring.h may hold records back (BPF_RB_NO_WAKEUP); the sweep
// keeps polling that long after the last activity it saw, then stops. It
// trades wakeups under load (a busy ring forces at most 1/RingColdAfter
// per second besides its size trigger) against sweeps after an isolated
// record (about RingColdAfter/RingPollInterval+1 ticks).
const RingColdAfter = 200 * time.Millisecond

// ringColdKnob is the BPF global of bpf/include/vigil_ring.h that Load sets to
// RingColdAfter.
const ringColdKnob = "vigil_ring_cold_ns"

// ReadRing delivers every record of the object's "events" ring buffer to
// handle until ctx is done. handle must not keep the slice. Producers may
// submit with BPF_RB_NO_WAKEUP to batch records; they are read at least
// every RingPollInterval.
//
// An idle agent should cost next to nothing, so no thread ever blocks in a
// system call here: the reader waits for the ring's wakeups in the Go
// runtime's own epoll (a thread parked in epoll_wait holds its P until the
// runtime's monitor takes it back, and every such hand-back puts the
// monitor into fast polling, hundreds of wake-ups a second). Records
// submitted without a wakeup are found by one timer shared by every ring of
// the process, which reads each ring's producer and consumer positions from
// the mapped pages (no system call) and wakes only readers with unread data.
// When every open ring's producer follows bpf/include/vigil_ring.h, the timer
// stops once all rings have been quiet for RingColdAfter, so an idle agent
// has no periodic wake-up at all; the next producer wakeup restarts it.
//
// The ring's data pages are mapped when the first record arrives: until
// then only the two position pages are, so a ring that never carries a
// record (open events while nothing consumes them) adds nothing to RSS; a
// mapped ring adds twice its size, as the kernel maps its data twice.
func (o *Object) ReadRing(ctx context.Context, handle func([]byte)) error {
	m, ok := o.Maps["events"]
	if !ok {
		return fmt.Errorf("%s: BPF object has no events ring buffer", o.Probe)
	}
	pos, err := mapRingPositions(m)
	if err != nil {
		return fmt.Errorf("%s: mapping ring buffer positions: %w", o.Probe, err)
	}
	w, err := newRingWaiter(m)
	if err != nil {
		pos.close()
		return fmt.Errorf("%s: watching ring buffer: %w", o.Probe, err)
	}
	o.ring.Store(pos)
	sweeper.add(w, pos.avail, o.ringCold)
	var rd *ringbuf.Reader
	defer func() {
		sweeper.remove(w)
		// Unpublish before unmapping, and wait out a scrape reading the fill.
		o.ringMu.Lock()
		o.ring.Store(nil)
		o.ringMu.Unlock()
		if rd != nil {
			rd.Close()
		}
		w.close()
		pos.close()
	}()
	stop := context.AfterFunc(ctx, w.kick)
	defer stop()

	var rec ringbuf.Record
	for {
		if rd == nil && pos.avail() > 0 {
			// The first record: map the data pages now.
			if rd, err = ringbuf.NewReader(m); err != nil {
				return fmt.Errorf("%s: opening ring buffer: %w", o.Probe, err)
			}
			// A deadline in the past: ReadInto returns the records there
			// are, then os.ErrDeadlineExceeded, and never blocks.
			rd.SetDeadline(time.Unix(1, 0))
		}
		// Drain, checking for cancellation between records: a busy ring
		// never runs dry.
		for rd != nil && ctx.Err() == nil {
			err := rd.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: reading ring buffer: %w", o.Probe, err)
			}
			o.Received.Add(1)
			handle(rec.RawSample)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := w.wait(func() bool { return pos.avail() > 0 }); err != nil {
			return fmt.Errorf("%s: waiting on ring buffer: %w", o.Probe, err)
		}
		// The producer woke us, so it may now hold records back for
		// RingColdAfter: the sweep must run.
		sweeper.touch()
	}
}

// ringPositions maps only a ring buffer's consumer and producer pages,
// read-only: enough to see whether records wait, without the data pages
// (which the kernel maps twice, so a mapped ring counts twice its size in
// RSS).
type ringPositions struct {
	mem  []byte
	page int
	size int
}

func mapRingPositions(m *ebpf.Map) (*ringPositions, error) {
	page := os.Getpagesize()
	mem, err := unix.Mmap(m.FD(), 0, 2*page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &ringPositions{mem: mem, page: page, size: int(m.MaxEntries())}, nil
}

// avail is the number of bytes between the consumer and producer positions.
func (p *ringPositions) avail() int {
	cons := atomic.LoadUint64((*uint64)(unsafe.Pointer(&p.mem[0])))
	prod := atomic.LoadUint64((*uint64)(unsafe.Pointer(&p.mem[p.page])))
	return int(prod - cons)
}

func (p *ringPositions) close() { _ = unix.Munmap(p.mem) }

// ringWaiter parks a goroutine until the ring buffer map's fd is readable
// (the producer woke it) or kick is called, using the runtime's netpoller.
type ringWaiter struct {
	f  *os.File
	rc syscall.RawConn
}

func newRingWaiter(m *ebpf.Map) (*ringWaiter, error) {
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "ringbuf")
	// Only a file in the runtime's poller has deadlines; any other would
	// make wait spin.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring buffer fd cannot be polled: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &ringWaiter{f: f, rc: rc}, nil
}

// wait returns once ready reports true, checking it whenever the fd turns
// readable, or when kicked.
func (w *ringWaiter) wait(ready func() bool) error {
	err := w.rc.Read(func(uintptr) bool { return ready() })
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// Kicked. Clear the kick before the caller drains, so a kick that
		// comes later is not lost.
		return w.f.SetReadDeadline(time.Time{})
	}
	return err
}

// kick wakes wait now.
func (w *ringWaiter) kick() { _ = w.f.SetReadDeadline(time.Unix(1, 0)) }

func (w *ringWaiter) close() { w.f.Close() }

// sweeper is the one timer behind every ring reader of the process.
var sweeper = newRingSweeper()

// ringSweeper wakes ring readers that hold records their producer did not
// signal. Its goroutine runs while some reader is open; it ticks every
// RingPollInterval, and pauses (cold) while every ring follows the
// vigil_ring.h policy and none had activity for RingColdAfter.
type ringSweeper struct {
	mu         sync.Mutex
	readers    map[*ringWaiter]sweptRing
	stop       chan struct{}
	warm       chan struct{} // wakes a cold sweep; buffered 1
	lastActive time.Time
	// wakeups counts readers woken by the sweep (records that waited for
	// the timer rather than a producer wakeup); ticks counts sweeps.
	wakeups, ticks atomic.Uint64
	cold           atomic.Bool
}

type sweptRing struct {
	avail    func() int // bytes waiting, read from the mapped positions
	coldSafe bool
}

func newRingSweeper() *ringSweeper {
	return &ringSweeper{readers: map[*ringWaiter]sweptRing{}, warm: make(chan struct{}, 1)}
}

func (s *ringSweeper) add(w *ringWaiter, avail func() int, coldSafe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readers[w] = sweptRing{avail: avail, coldSafe: coldSafe}
	s.lastActive = time.Now()
	if s.stop == nil {
		s.stop = make(chan struct{})
		go s.run(s.stop)
	}
	s.warmUp()
}

// remove forgets w; after it returns the sweep no longer touches w or the
// ring, so the caller may close them.
func (s *ringSweeper) remove(w *ringWaiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.readers, w)
	if len(s.readers) == 0 && s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
}

// touch records activity (a producer wakeup) and restarts a cold sweep.
func (s *ringSweeper) touch() {
	s.mu.Lock()
	s.lastActive = time.Now()
	s.mu.Unlock()
	if s.cold.Load() {
		s.warmUp()
	}
}

func (s *ringSweeper) warmUp() {
	select {
	case s.warm <- struct{}{}:
	default:
	}
}

func (s *ringSweeper) run(stop chan struct{}) {
	t := time.NewTicker(RingPollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if s.sweep() {
			continue
		}
		// Cold: no timer until a producer wakes a reader. Announce it
		// first, then look again: a touch either lands before the second
		// look or sees cold and warms the sweep up.
		t.Stop()
		s.cold.Store(true)
		if s.sweep() {
			s.cold.Store(false)
			t.Reset(RingPollInterval)
			continue
		}
		select {
		case <-stop:
			return
		case <-s.warm:
		}
		s.cold.Store(false)
		t.Reset(RingPollInterval)
	}
}

// sweep wakes the readers with unread records and reports whether the
// sweep must keep ticking.
func (s *ringSweeper) sweep() bool {
	s.ticks.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	canCool := true
	for w, r := range s.readers {
		if r.avail() > 0 {
			w.kick()
			s.wakeups.Add(1)
			s.lastActive = now
		}
		canCool = canCool && r.coldSafe
	}
	// One interval of margin: a record held back just before the limit is
	// in the ring by the last sweep.
	return !canCool || now.Sub(s.lastActive) <= RingColdAfter+RingPollInterval
}

// RingSweepWakeups counts how often the shared ring timer found unread
// records and woke their reader.
func RingSweepWakeups() uint64 { return sweeper.wakeups.Load() }

// RingSweeps counts the shared ring timer's ticks; it stands still while
// the sweep is cold.
func RingSweeps() uint64 { return sweeper.ticks.Load() }

// Dropped sums the per-CPU "dropped" counter the BPF side increments when
// the ring buffer is full.
func (o *Object) Dropped() (uint64, error) {
	m, ok := o.Maps["dropped"]
	if !ok {
		return 0, nil
	}
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0, err
	}
	return SumPerCPU(perCPU), nil
}

// MapEntries counts a map's entries; arrays are full by construction.
// Iteration is bounded by max_entries.
func MapEntries(m *ebpf.Map) (int, bool) {
	switch m.Type() {
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash:
	default:
		return 0, false
	}
	var n int
	var key []byte
	next := make([]byte, m.KeySize())
	var cur any
	for n < int(m.MaxEntries())+1 {
		if err := m.NextKey(cur, next); err != nil {
			break
		}
		n++
		key = append(key[:0], next...)
		cur = key
	}
	return n, true
}
