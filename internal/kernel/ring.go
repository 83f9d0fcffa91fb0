package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// RingPollInterval bounds how long a record may wait in a ring buffer when
// its producer asked for no wakeup (BPF_RB_NO_WAKEUP): pending records are
// collected at least this often.
const RingPollInterval = 50 * time.Millisecond

// ReadRing delivers every record of the object's "events" ring buffer to
// handle until ctx is done. handle must not keep the slice. Producers may
// submit with BPF_RB_NO_WAKEUP to batch records; they are read at least
// every RingPollInterval.
//
// The reader sleeps in epoll until the producer wakes it. Records submitted
// without a wakeup are found by one timer shared by every ring of the
// process, which reads each ring's producer and consumer positions from the
// mapped pages (no system call) and wakes only the readers with unread
// data: an idle agent costs one timer tick per interval, not one epoll
// timeout per ring.
func (o *Object) ReadRing(ctx context.Context, handle func([]byte)) error {
	m, ok := o.Maps["events"]
	if !ok {
		return fmt.Errorf("%s: BPF object has no events ring buffer", o.Probe)
	}
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return fmt.Errorf("%s: opening ring buffer: %w", o.Probe, err)
	}
	o.ring.Store(rd)
	sweeper.add(rd)
	defer func() {
		sweeper.remove(rd)
		// Unpublish before closing, and wait out a scrape reading the fill.
		o.ringMu.Lock()
		o.ring.Store(nil)
		o.ringMu.Unlock()
		rd.Close()
	}()
	// On cancel, a flush makes the reader drain what is there and return.
	stop := context.AfterFunc(ctx, func() { _ = rd.Flush() })
	defer stop()

	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) {
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: reading ring buffer: %w", o.Probe, err)
		}
		o.Received.Add(1)
		handle(rec.RawSample)
		// A busy ring never drains: check for cancellation between records too.
		if ctx.Err() != nil {
			return nil
		}
	}
}

// sweeper is the one timer behind every ring reader of the process.
var sweeper = &ringSweeper{readers: map[*ringbuf.Reader]struct{}{}}

// ringSweeper wakes ring readers that hold records their producer did not
// signal. Its goroutine runs only while some reader is open.
type ringSweeper struct {
	mu      sync.Mutex
	readers map[*ringbuf.Reader]struct{}
	stop    chan struct{}
	// Wakeups counts readers woken by the sweep (records that waited for
	// the timer rather than a producer wakeup).
	wakeups atomic.Uint64
}

func (s *ringSweeper) add(rd *ringbuf.Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readers[rd] = struct{}{}
	if s.stop == nil {
		s.stop = make(chan struct{})
		go s.run(s.stop)
	}
}

// remove forgets rd; after it returns the sweep no longer touches rd, so
// the caller may close it.
func (s *ringSweeper) remove(rd *ringbuf.Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.readers, rd)
	if len(s.readers) == 0 && s.stop != nil {
		close(s.stop)
		s.stop = nil
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
		s.mu.Lock()
		for rd := range s.readers {
			// AvailableBytes reads the positions from the shared pages.
			if rd.AvailableBytes() > 0 {
				_ = rd.Flush()
				s.wakeups.Add(1)
			}
		}
		s.mu.Unlock()
	}
}

// RingSweepWakeups counts how often the shared ring timer found unread
// records and woke their reader.
func RingSweepWakeups() uint64 { return sweeper.wakeups.Load() }

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
