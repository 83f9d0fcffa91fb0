/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ring-buffer wakeup policy shared with kernel.(*Object).ReadRing.
 *
 * Batching records with BPF_RB_NO_WAKEUP saves wakeups under load, but then
 * the reader must poll to find them, and polling costs an idle agent a
 * timer tick every 50 ms. With this helper a producer suppresses the wakeup
 * only within vigil_ring_cold_ns of the last wakeup it sent; ReadRing keeps
 * polling for that long after each wakeup and stops polling once every ring
 * is quiet. Idle costs nothing, sparse events wake the reader at once, and
 * busy rings are batched and read within the 50 ms poll interval.
 *
 * An object that includes this header declares vigil_ring_cold_ns, which
 * kernel.Load sets (kernel.RingColdAfter); left at 0 every record wakes the
 * reader.
 */
#ifndef VIGIL_RING_H
#define VIGIL_RING_H

volatile const __u64 vigil_ring_cold_ns = 0;
__u64 vigil_ring_last_wakeup_ns = 0;

/* vigil_ring_flags_at returns the flags for bpf_ringbuf_output/submit on
 * ring at time now (bpf_ktime_get_ns): a forced wakeup when none was sent for
 * vigil_ring_cold_ns or when at least wakeup_bytes wait (0: no size
 * trigger), no wakeup otherwise. */
static __always_inline __u64 vigil_ring_flags_at(void *ring, __u64 wakeup_bytes, __u64 now)
{
	if (now - vigil_ring_last_wakeup_ns >= vigil_ring_cold_ns ||
	    (wakeup_bytes && bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeup_bytes)) {
		vigil_ring_last_wakeup_ns = now;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

/* vigil_ring_flags is vigil_ring_flags_at now; a producer that already read
 * the clock passes its reading to _at instead and saves a second read. */
static __always_inline __u64 vigil_ring_flags(void *ring, __u64 wakeup_bytes)
{
	return vigil_ring_flags_at(ring, wakeup_bytes, bpf_ktime_get_ns());
}

#endif
