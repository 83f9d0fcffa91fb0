package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// ReadRing delivers every record of the object's "events" ring buffer to
// handle until ctx is done. handle must not keep the slice.
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
	defer o.ring.Store(nil)
	// Close, not SetDeadline: ReadInto holds the reader's lock while it
	// waits, so SetDeadline would block until the next record arrives.
	// Close interrupts the wait.
	stop := context.AfterFunc(ctx, func() { _ = rd.Close() })
	defer stop()
	defer rd.Close()

	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			return fmt.Errorf("%s: reading ring buffer: %w", o.Probe, err)
		}
		o.Received.Add(1)
		handle(rec.RawSample)
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
