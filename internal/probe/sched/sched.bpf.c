//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Scheduler latency, aggregated in the kernel from sched_wakeup,
 * sched_wakeup_new and sched_switch:
 *  - run-queue latency: from the moment a thread becomes runnable (woken, or
 *    descheduled while still runnable) until it runs, as a log2 histogram in
 *    microseconds per cgroup (the same buckets as libbpf-tools runqlat);
 *  - off-CPU time: from switch-out to switch-in, by the reason the thread
 *    left the CPU, per cgroup and per thread.
 * Nothing is sent per event; user space reads the maps when scraped.
 * Each program exists as tp_btf and raw_tp; user space attaches the first
 * that works, the same kind for all three since they share the per-thread
 * state (task storage for tp_btf, a hash for raw_tp). At sched_switch the
 * current task is still prev, so both kinds read prev through
 * bpf_get_current_task_btf().
 */
#include "vigil.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define HIST_SLOTS 26 /* slot 0: < 2 us; slot i: [2^i, 2^(i+1)) us; the last is unbounded */

/* Off-CPU reasons, the index into the per-reason arrays. */
#define REASON_SLEEP 0
#define REASON_IO 1
#define REASON_LOCK 2
#define REASON_PREEMPTED 3
#define NR_REASONS 4

/* Counters of map inserts that failed because a map was full. */
#define FULL_THREADS 0	/* an off-CPU interval was not timed */
#define FULL_CGROUPS 1	/* a sample was counted under cgroup "other" */
#define NR_FULL 2

/* x86_64 syscall numbers that wait for a user-space lock. */
#define NR_FLOCK 73
#define NR_FUTEX 202
#define NR_FUTEX_WAITV 449

#define TASK_RUNNING 0
#define TASK_DEAD 0x80
#define E2BIG 7

volatile const bool key_cgroup = true;	 /* aggregate per cgroup */
volatile const bool thread_stats = true; /* keep per-thread totals */

/* A thread that is off the CPU: since when, why, and since when runnable. */
struct thread_state {
	__u64 off_ns;	/* switch-out time; 0: not seen leaving (woken first) */
	__u64 enq_ns;	/* became runnable; 0: still waiting for a wake-up */
	__u32 reason;
	__u32 pad;
};

/* Per-cgroup aggregate (per CPU). */
struct cg_val {
	__u64 runq_hist[HIST_SLOTS];
	__u64 runq_count;
	__u64 runq_ns;
	__u64 offcpu_ns[NR_REASONS];
	__u64 offcpu_count[NR_REASONS];
};

/* Per-thread totals, written only at the thread's own switch-in. */
struct thread_val {
	__u64 cgroup_id;
	__u32 tgid;
	char comm[TASK_COMM_LEN];
	__u32 pad;
	__u64 runq_hist[HIST_SLOTS];
	__u64 runq_count;
	__u64 runq_ns;
	__u64 offcpu_ns[NR_REASONS];
	__u64 offcpu_count[NR_REASONS];
};

/* Threads' state in task-local storage (tp_btf programs, 5.11+): no insert
 * or delete per switch, freed with the task, bounded by the tasks. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} task_state SEC(".maps");

/* Threads off the CPU right now, by tid (raw_tp programs). Entries leave at
 * switch-in. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct thread_state);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct cg_val);
} cgroups SEC(".maps");

/* Samples of cgroups that found "cgroups" full: totals stay exact. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cg_val);
} cgroups_other SEC(".maps");

/* Per-thread totals for live views; least recently switched-in threads leave first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct thread_val);
} thread_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_FULL);
	__type(key, __u32);
	__type(value, __u64);
} map_full SEC(".maps");

/* Zero values to insert new entries from (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cg_val);
} zero_cg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct thread_val);
} zero_thread SEC(".maps");

static __always_inline void count_full(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&map_full, &which);

	if (n)
		(*n)++;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 slot(__u64 ns)
{
	__u32 s = log2_u64(ns / 1000);

	return s < HIST_SLOTS ? s : HIST_SLOTS - 1;
}

/*
 * The helpers below take btf: true in tp_btf programs, whose task pointers
 * the verifier trusts (direct loads, task storage), false in raw_tp programs
 * (probe reads, the threads hash). It is a constant, so each program keeps
 * only its own branch.
 */
static __always_inline __u64 task_cgroup(struct task_struct *t, bool btf)
{
	if (!key_cgroup)
		return 0;
	if (btf)
		return t->cgroups->dfl_cgrp->kn->id;
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline struct cg_val *cgroup_val(__u64 id)
{
	struct cg_val *v = bpf_map_lookup_elem(&cgroups, &id);
	__u32 zero = 0;

	if (v)
		return v;
	v = bpf_map_lookup_elem(&zero_cg, &zero);
	if (!v)
		return 0;
	/* Fails when another CPU inserted the key first or the map is full. */
	bpf_map_update_elem(&cgroups, &id, v, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&cgroups, &id);
	if (v)
		return v;
	count_full(FULL_CGROUPS);
	return bpf_map_lookup_elem(&cgroups_other, &zero);
}

static __always_inline struct thread_val *thread_val(__u32 tid, struct task_struct *t, __u64 cg, bool btf)
{
	struct thread_val *v = bpf_map_lookup_elem(&thread_totals, &tid);
	__u32 zero = 0;

	if (!v) {
		v = bpf_map_lookup_elem(&zero_thread, &zero);
		if (!v)
			return 0;
		bpf_map_update_elem(&thread_totals, &tid, v, BPF_ANY);
		v = bpf_map_lookup_elem(&thread_totals, &tid);
		if (!v)
			return 0;
	}
	/* A tid can be reused and a thread can change comm or cgroup. */
	v->cgroup_id = cg;
	if (btf) {
		v->tgid = t->tgid;
		__builtin_memcpy(v->comm, t->comm, TASK_COMM_LEN);
	} else {
		v->tgid = BPF_CORE_READ(t, tgid);
		BPF_CORE_READ_STR_INTO(&v->comm, t, comm);
	}
	return v;
}

/* The state of thread t (tid), created when create is set; NULL when it has
 * none, or when there is no room (counted). */
static __always_inline struct thread_state *state_of(struct task_struct *t, __u32 tid, bool create, bool btf)
{
	struct thread_state *s, zero = {};

	if (btf) {
		s = bpf_task_storage_get(&task_state, t, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
		if (!s && create)
			count_full(FULL_THREADS);
		return s;
	}
	s = bpf_map_lookup_elem(&threads, &tid);
	if (s || !create)
		return s;
	if (bpf_map_update_elem(&threads, &tid, &zero, BPF_NOEXIST) == -E2BIG) {
		count_full(FULL_THREADS);
		return 0;
	}
	return bpf_map_lookup_elem(&threads, &tid);
}

/* A woken thread is runnable from now on. */
static __always_inline int on_wakeup(struct task_struct *p, bool btf)
{
	__u32 tid = btf ? p->pid : BPF_CORE_READ(p, pid);
	struct thread_state *s;

	if (!tid)
		return 0;
	/* Not seen leaving (new, or asleep since before the probe): the entry
	 * times the queue only. */
	s = state_of(p, tid, true, btf);
	if (s && !s->enq_ns)
		s->enq_ns = bpf_ktime_get_ns();
	return 0;
}

/* Why prev leaves the CPU. prev is the current task. */
static __always_inline __u32 reason(bool preempt, unsigned int state, struct task_struct *prev)
{
	struct pt_regs *regs;
	long nr;

	if (preempt || state == TASK_RUNNING)
		return REASON_PREEMPTED;
	if (BPF_CORE_READ_BITFIELD(prev, in_iowait))
		return REASON_IO;
	/* The syscall it sleeps in; -1 outside a syscall. */
	regs = (struct pt_regs *)bpf_task_pt_regs(prev);
	if (regs) {
		nr = BPF_CORE_READ(regs, orig_ax);
		if (nr == NR_FUTEX || nr == NR_FUTEX_WAITV || nr == NR_FLOCK)
			return REASON_LOCK;
	}
	return REASON_SLEEP;
}

static __always_inline int on_switch(bool preempt, struct task_struct *next, unsigned int prev_state, bool btf)
{
	struct task_struct *prev = bpf_get_current_task_btf();
	__u32 prev_tid = prev->pid, next_tid;
	struct thread_state *s;
	__u64 now = bpf_ktime_get_ns();

	/* prev leaves: remember when and why, unless it is idle or exiting. */
	if (prev_tid && !(prev_state & TASK_DEAD)) {
		s = state_of(prev, prev_tid, true, btf);
		if (s) {
			s->off_ns = now;
			s->reason = reason(preempt, prev_state, prev);
			/* Otherwise keep enq_ns: 0, unless a wake-up on another CPU
			 * raced with this switch-out (the task is already runnable). */
			if (s->reason == REASON_PREEMPTED)
				s->enq_ns = now;
		}
	}

	next_tid = btf ? next->pid : BPF_CORE_READ(next, pid);
	if (!next_tid)
		return 0;
	s = state_of(next, next_tid, false, btf);
	if (!s || !(s->off_ns | s->enq_ns))
		return 0;
	{
		__u64 off = s->off_ns, enq = s->enq_ns, cg = task_cgroup(next, btf);
		__u32 r = s->reason & (NR_REASONS - 1);
		struct cg_val *v;
		struct thread_val *tv = 0;

		if (btf)
			s->off_ns = s->enq_ns = 0;
		else
			bpf_map_delete_elem(&threads, &next_tid);
		v = cgroup_val(cg);
		if (thread_stats)
			tv = thread_val(next_tid, next, cg, btf);
		if (enq && now > enq) {
			__u64 d = now - enq;
			__u32 b = slot(d);

			if (v) {
				v->runq_hist[b]++;
				v->runq_count++;
				v->runq_ns += d;
			}
			if (tv) {
				tv->runq_hist[b]++;
				tv->runq_count++;
				tv->runq_ns += d;
			}
		}
		if (off && now > off) {
			__u64 d = now - off;

			if (v) {
				v->offcpu_ns[r] += d;
				v->offcpu_count[r]++;
			}
			if (tv) {
				tv->offcpu_ns[r] += d;
				tv->offcpu_count[r]++;
			}
		}
	}
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(tp_btf_sched_wakeup, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(tp_btf_sched_wakeup_new, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	return on_switch(preempt, next, prev_state, true);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(raw_tp_sched_wakeup, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(raw_tp_sched_wakeup_new, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	return on_switch(preempt, next, prev_state, false);
}

/* Keep the map types in BTF so bpf2go emits matching Go structs. */
const struct cg_val *unused_cg_val __attribute__((unused));
const struct thread_val *unused_thread_val __attribute__((unused));
const struct thread_state *unused_thread_state __attribute__((unused));
