//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Test programs for the loader's uprobe and perf_event attach: each counts
// its hits per process (tgid), so tests can assert exact counts for their
// own children whatever else runs on the machine.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "vigil_ring.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} uprobe_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} samples SEC(".maps");

static __always_inline void count(void *map)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1, *v;

	v = bpf_map_lookup_elem(map, &tgid);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	if (bpf_map_update_elem(map, &tgid, &one, BPF_NOEXIST)) {
		v = bpf_map_lookup_elem(map, &tgid);
		if (v)
			__sync_fetch_and_add(v, 1);
	}
}

SEC("uprobe")
int count_call(void *ctx)
{
	count(&uprobe_hits);
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

/* emit writes the caller's tgid into the events ring under the shared
 * wakeup policy (no size trigger). */
SEC("uprobe")
int emit(void *ctx)
{
	__u64 tgid = bpf_get_current_pid_tgid() >> 32;

	bpf_ringbuf_output(&events, &tgid, sizeof(tgid), vigil_ring_flags(&events, 0));
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} egress_packets SEC(".maps");

/* count_egress counts the packets sent by sockets of the cgroup it is
 * attached to, and lets them pass. */
SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	u32 zero = 0;
	u64 *v = bpf_map_lookup_elem(&egress_packets, &zero);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 1;
}

SEC("perf_event")
int count_sample(void *ctx)
{
	count(&samples);
	return 0;
}
