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

/*
 * The process context every event carries, filled from a task by
 * vigil_fill_proc at the time of the event, so user space never has to race
 * an exec event or /proc for the parent or the start time.
 *
 * start_ns is the process's (thread group leader's) start time in
 * nanoseconds since boot, suspend included: task->start_boottime, the value
 * /proc/<pid>/stat field 22 shows truncated to clock ticks. Every probe uses
 * this unit; the process cache keys processes by (pid, start_ns).
 */
struct vigil_proc {
	__u32 pid;  /* tgid */
	__u32 tid;  /* the thread's pid */
	__u32 ppid; /* real_parent->tgid */
	__u32 uid;
	__u32 gid;
	__u32 pad;
	__u64 start_ns;
	__u64 cgroup_id;
	char comm[TASK_COMM_LEN];
	char parent_comm[TASK_COMM_LEN]; /* real_parent->group_leader->comm */
};

/*
 * Fill p from the current task. Called from a hook that runs in the task's
 * own context (syscall tracepoints, sched tracepoints for the current task).
 */
static __always_inline void vigil_fill_proc(struct vigil_proc *p)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	p->pid = id >> 32;
	p->tid = (__u32)id;
	p->ppid = BPF_CORE_READ(parent, tgid);
	p->uid = (__u32)ug;
	p->gid = ug >> 32;
	p->pad = 0;
	p->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	p->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
	/* The parent's process name: its leader's comm, not a thread's. */
	BPF_CORE_READ_STR_INTO(&p->parent_comm, parent, group_leader, comm);
}

/*
 * Stable prefix of the syscalls:sys_enter_* / sys_exit_* tracepoint records
 * (include/trace/events/syscalls.h): the common header, the syscall number,
 * then the arguments or the return value.
 */
struct syscall_enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct syscall_exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

#endif /* __VIGIL_H */
