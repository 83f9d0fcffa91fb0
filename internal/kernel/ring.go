package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// RingPollInterval bounds how long a record may wait in a ring buffer when
// its producer asked for no wakeup (BPF_RB_NO_WAKEUP): the reader collects
// whatever is there at least this often.
const RingPollInterval = 50 * time.Millisecond

// ReadRing delivers every record of the object's "events" ring buffer to
// handle until ctx is done. handle must not keep the slice. Producers may
// submit with BPF_RB_NO_WAKEUP to batch records; they are read at least
// every RingPollInterval.
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
	defer func() {
		// Unpublish before closing, and wait out a scrape reading the fill.
		o.ringMu.Lock()
		o.ring.Store(nil)
		o.ringMu.Unlock()
		rd.Close()
	}()
	rd.SetDeadline(time.Now().Add(RingPollInterval))
	// On cancel, a deadline in the past makes the reader drain what is
	// there and return.
	stop := context.AfterFunc(ctx, func() { rd.SetDeadline(time.Now()) })
	defer stop()

	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ringbuf.ErrClosed) {
				if ctx.Err() != nil {
					return nil
				}
				rd.SetDeadline(time.Now().Add(RingPollInterval))
				continue
			}
			return fmt.Errorf("%s: reading ring buffer: %w", o.Probe, err)
		}
		o.Received.Add(1)
		handle(rec.RawSample)
		// A busy ring never reaches the deadline: check for cancellation
		// between records too.
		if ctx.Err() != nil {
			return nil
		}
	}
}

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
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
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
