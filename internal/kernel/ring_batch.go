package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// ReadRingBatched is ReadRing for BPF producers that submit with
// BPF_RB_NO_WAKEUP until the ring holds a threshold of bytes (then
// BPF_RB_FORCE_WAKEUP): the reader wakes once per batch instead of once per
// record, and flushes the ring every interval so records below the threshold
// still arrive within interval.
func (o *Object) ReadRingBatched(ctx context.Context, interval time.Duration, handle func([]byte)) error {
	if interval <= 0 {
		return o.ReadRing(ctx, handle)
	}
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
	stop := context.AfterFunc(ctx, func() { _ = rd.Close() })
	defer stop()
	defer rd.Close()

	// Flush only touches the reader's eventfd, which is safe against a
	// concurrent Close; the ticker stops before the deferred Close runs.
	tickDone := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(tickDone)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-tickDone:
				return
			case <-t.C:
				_ = rd.Flush()
			}
		}
	}()

	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) {
				continue
			}
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
