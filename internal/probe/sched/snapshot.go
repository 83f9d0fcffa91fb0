package sched

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/cilium/ebpf"
)

// HistSlots is the number of log2 run-queue latency slots kept in the
// kernel, as in libbpf-tools runqlat: slot 0 counts waits under 2 µs, slot i
// waits in [2^i, 2^(i+1)) µs, the last everything from 2^25 µs (33.5 s) up.
const HistSlots = 26

// Reason is why a thread left the CPU.
type Reason int

// The off-CPU reasons, in the kernel's order.
const (
	Sleep     Reason = iota // waiting for an event: poll, nanosleep, read on a pipe or socket, ...
	IO                      // waiting in io_schedule (in_iowait): block I/O, page writeback
	Lock                    // waiting in futex, futex_waitv or flock
	Preempted               // still runnable: preempted, yielded or out of time slice
	NumReasons
)

var reasonNames = [NumReasons]string{"sleep", "io", "lock", "preempted"}

func (r Reason) String() string {
	if r < 0 || r >= NumReasons {
		return fmt.Sprintf("reason(%d)", int(r))
	}
	return reasonNames[r]
}

// Reasons lists every reason in order.
func Reasons() []Reason { return []Reason{Sleep, IO, Lock, Preempted} }

// Stats is what the kernel counted for one cgroup or thread, summed over CPUs.
type Stats struct {
	RunqHist    [HistSlots]uint64
	RunqCount   uint64
	RunqNS      uint64
	OffCPUNS    [NumReasons]uint64
	OffCPUCount [NumReasons]uint64
}

func (s *Stats) add(hist *[HistSlots]uint64, count, ns uint64, off, offCount *[NumReasons]uint64) {
	for i := range s.RunqHist {
		s.RunqHist[i] += hist[i]
	}
	s.RunqCount += count
	s.RunqNS += ns
	for i := range s.OffCPUNS {
		s.OffCPUNS[i] += off[i]
		s.OffCPUCount[i] += offCount[i]
	}
}

// Add adds o to s.
func (s *Stats) Add(o Stats) { s.add(&o.RunqHist, o.RunqCount, o.RunqNS, &o.OffCPUNS, &o.OffCPUCount) }

// Sub is what was counted since prev (a snapshot of the same key taken
// earlier); a key that restarted (a reused tid) counts from zero.
func (s Stats) Sub(prev Stats) Stats {
	if s.RunqCount < prev.RunqCount {
		return s
	}
	for i := range s.OffCPUNS {
		if s.OffCPUNS[i] < prev.OffCPUNS[i] {
			return s
		}
	}
	d := s
	for i := range d.RunqHist {
		d.RunqHist[i] -= min(prev.RunqHist[i], d.RunqHist[i])
	}
	d.RunqCount -= prev.RunqCount
	d.RunqNS -= prev.RunqNS
	for i := range d.OffCPUNS {
		d.OffCPUNS[i] -= prev.OffCPUNS[i]
		d.OffCPUCount[i] -= min(prev.OffCPUCount[i], d.OffCPUCount[i])
	}
	return d
}

// OffCPU is the off-CPU time for reason r in seconds.
func (s *Stats) OffCPU(r Reason) float64 { return float64(s.OffCPUNS[r]) / 1e9 }

// MedianSlot is the histogram slot holding the median wait (-1 when empty).
func (s *Stats) MedianSlot() int { return medianSlot(s.RunqHist[:]) }

func medianSlot(h []uint64) int {
	var total, cum uint64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return -1
	}
	for i, n := range h {
		cum += n
		if 2*cum >= total {
			return i
		}
	}
	return len(h) - 1
}

// Quantile estimates the q-quantile of the run-queue wait in seconds by
// linear interpolation inside its log2 slot, as Prometheus'
// histogram_quantile does; NaN when nothing was counted.
func (s *Stats) Quantile(q float64) float64 {
	var total uint64
	for _, n := range s.RunqHist {
		total += n
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range s.RunqHist {
		if n == 0 || cum+float64(n) < rank {
			cum += float64(n)
			continue
		}
		lo := SlotLowerBound(i)
		hi := SlotUpperBound(i)
		if math.IsInf(hi, 1) {
			return lo
		}
		return lo + (hi-lo)*(rank-cum)/float64(n)
	}
	return SlotLowerBound(HistSlots - 1)
}

// SlotUpperBound is the upper bound of slot i in seconds (+Inf for the last).
func SlotUpperBound(i int) float64 {
	if i >= HistSlots-1 {
		return math.Inf(1)
	}
	return math.Ldexp(1, i+1) / 1e6
}

// SlotLowerBound is the lower bound of slot i in seconds.
func SlotLowerBound(i int) float64 {
	if i == 0 {
		return 0
	}
	return math.Ldexp(1, i) / 1e6
}

// CgroupStats is the aggregate of one cgroup.
type CgroupStats struct {
	CgroupID uint64 // 0 when not aggregated by container
	Overflow bool   // counted while the cgroup map was full: cgroup unknown
	Stats
}

// ThreadStats is the aggregate of one thread, as last seen switching in.
type ThreadStats struct {
	TID, TGID uint32
	Comm      string
	CgroupID  uint64
	Stats
}

// Cgroups reads the per-cgroup aggregates, summed over CPUs; the overflow
// aggregate is included when it counted anything.
func (p *Probe) Cgroups() ([]CgroupStats, error) {
	var out []CgroupStats
	var id uint64
	var vals []schedCgVal
	it := p.maps.Cgroups.Iterate()
	for it.Next(&id, &vals) {
		c := CgroupStats{CgroupID: id}
		for i := range vals {
			v := &vals[i]
			c.add(&v.RunqHist, v.RunqCount, v.RunqNs, &v.OffcpuNs, &v.OffcpuCount)
		}
		out = append(out, c)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading sched cgroup aggregates: %w", err)
	}
	if err := p.maps.CgroupsOther.Lookup(uint32(0), &vals); err != nil {
		return nil, fmt.Errorf("reading sched overflow aggregate: %w", err)
	}
	c := CgroupStats{Overflow: true}
	for i := range vals {
		v := &vals[i]
		c.add(&v.RunqHist, v.RunqCount, v.RunqNs, &v.OffcpuNs, &v.OffcpuCount)
	}
	if c.RunqCount > 0 || c.OffCPUCount != [NumReasons]uint64{} {
		out = append(out, c)
	}
	return out, nil
}

// Threads reads the per-thread totals (empty when thread_stats is off).
func (p *Probe) Threads() ([]ThreadStats, error) {
	var out []ThreadStats
	var tid uint32
	var v schedThreadVal
	it := p.maps.ThreadTotals.Iterate()
	for it.Next(&tid, &v) {
		t := ThreadStats{TID: tid, TGID: v.Tgid, Comm: comm(v.Comm), CgroupID: v.CgroupId}
		t.add(&v.RunqHist, v.RunqCount, v.RunqNs, &v.OffcpuNs, &v.OffcpuCount)
		out = append(out, t)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading sched thread totals: %w", err)
	}
	return out, nil
}

// MapFull counts map inserts refused because a map was full: threads (an
// off-CPU interval or run-queue wait not timed) and cgroups (samples counted
// under container "other").
func (p *Probe) MapFull() (threads, cgroups uint64, err error) {
	var vals []uint64
	for i, dst := range []*uint64{&threads, &cgroups} {
		if err := p.maps.MapFull.Lookup(uint32(i), &vals); err != nil {
			return 0, 0, fmt.Errorf("reading sched map-full counters: %w", err)
		}
		for _, n := range vals {
			*dst += n
		}
	}
	return threads, cgroups, nil
}

func comm(c [16]int8) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Thread reads one thread's totals; ok is false when the kernel has none.
func (p *Probe) Thread(tid uint32) (t ThreadStats, ok bool, err error) {
	var v schedThreadVal
	if err := p.maps.ThreadTotals.Lookup(tid, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return t, false, nil
		}
		return t, false, fmt.Errorf("reading sched thread %d: %w", tid, err)
	}
	t = ThreadStats{TID: tid, TGID: v.Tgid, Comm: comm(v.Comm), CgroupID: v.CgroupId}
	t.add(&v.RunqHist, v.RunqCount, v.RunqNs, &v.OffcpuNs, &v.OffcpuCount)
	return t, true, nil
}
