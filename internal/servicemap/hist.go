package servicemap

import (
	"math/bits"
	"slices"
)

// Hist is a sparse log-linear histogram of durations in nanoseconds: every
// power of two is split into 8 equal buckets, so a bucket's midpoint is
// within 1/16 (6.25 %) of any value in it. Only buckets that hold samples
// are stored, so an edge whose latencies span two octaves costs ~16
// buckets. Values below 8 ns are exact.
type Hist struct {
	buckets []bucket // sorted by idx
	count   uint64
}

type bucket struct {
	idx uint16
	n   uint32
}

// subBits is log2 of the buckets per power of two.
const subBits = 3

// bucketOf is the index of v's bucket.
func bucketOf(v uint64) uint16 {
	if v < 1<<subBits {
		return uint16(v)
	}
	e := bits.Len64(v) - 1 // v's power of two, >= subBits
	sub := (v >> (e - subBits)) & (1<<subBits - 1)
	return uint16(1<<subBits + (e-subBits)<<subBits + int(sub))
}

// midpoint is the value a bucket stands for in quantiles.
func midpoint(idx uint16) float64 {
	if idx < 1<<subBits {
		return float64(idx)
	}
	e := int(idx>>subBits) - 1 + subBits
	sub := uint64(idx & (1<<subBits - 1))
	width := uint64(1) << (e - subBits)
	lower := (1<<subBits + sub) * width
	return float64(lower) + float64(width)/2
}

// Add records one value.
func (h *Hist) Add(v uint64) {
	idx := bucketOf(v)
	i, ok := slices.BinarySearchFunc(h.buckets, idx, func(b bucket, t uint16) int { return int(b.idx) - int(t) })
	if ok {
		h.buckets[i].n++
	} else {
		h.buckets = slices.Insert(h.buckets, i, bucket{idx: idx, n: 1})
	}
	h.count++
}

// Merge adds o's samples to h.
func (h *Hist) Merge(o *Hist) {
	for _, b := range o.buckets {
		i, ok := slices.BinarySearchFunc(h.buckets, b.idx, func(x bucket, t uint16) int { return int(x.idx) - int(t) })
		if ok {
			h.buckets[i].n += b.n
		} else {
			h.buckets = slices.Insert(h.buckets, i, b)
		}
	}
	h.count += o.count
}

// Count is the number of samples.
func (h *Hist) Count() uint64 { return h.count }

// Quantile estimates the q-quantile (0 < q <= 1) by nearest rank: the
// midpoint of the bucket holding the ceil(q*n)-th smallest sample, so it is
// within 6.25 % of that sample. 0 when empty.
func (h *Hist) Quantile(q float64) float64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(q * float64(h.count))
	if float64(rank) < q*float64(h.count) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for _, b := range h.buckets {
		seen += uint64(b.n)
		if seen >= rank {
			return midpoint(b.idx)
		}
	}
	return midpoint(h.buckets[len(h.buckets)-1].idx)
}
