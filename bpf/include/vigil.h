/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Shared helpers for vigil's BPF programs. */
#ifndef __VIGIL_H
#define __VIGIL_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif

/*
 * Every probe that emits events owns one ring buffer named "events" and one
 * per-CPU counter "dropped" that counts records the ring buffer had no room
 * for. User space reports both as self-metrics, so no loss is ever silent.
 */
#define VIGIL_EVENTS_RINGBUF(default_size)                                     \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                            \
		__uint(max_entries, default_size);                             \
	} events SEC(".maps");                                                 \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                       \
		__uint(max_entries, 1);                                        \
		__type(key, __u32);                                            \
		__type(value, __u64);                                          \
	} dropped SEC(".maps");                                                \
	static __always_inline void count_drop(void)                           \
	{                                                                      \
		__u32 zero = 0;                                                \
		__u64 *n = bpf_map_lookup_elem(&dropped, &zero);               \
		if (n)                                                         \
			(*n)++;                                                \
	}

/* Process id (tgid) of the current task. */
static __always_inline __u32 current_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

#endif /* __VIGIL_H */
