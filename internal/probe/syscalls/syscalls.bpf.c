//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Syscall statistics from raw_syscalls sys_enter/sys_exit, aggregated in the
 * kernel: per (syscall, cgroup, thread comm) a count, an error count, the
 * total time and a log2 latency histogram; per (syscall, errno) an error
 * count. Nothing is sent per syscall; user space reads the maps when scraped.
 * Each program exists as tp_btf, raw_tp and tracepoint; user space attaches
 * the first that works.
 */
#include "vigil.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define HIST_BUCKETS 26 /* bucket i < 2^(i+10) ns; the last is unbounded */
#define MAX_NR 1024	/* syscall numbers tracked in the overflow array */
#define NR_EXIT 60
#define NR_EXIT_GROUP 231

volatile const bool use_pid_filter = false;
volatile const bool key_comm = true;	/* aggregate per thread comm */
volatile const bool key_cgroup = true;	/* aggregate per cgroup */

struct start {
	__u64 ts;
	__u32 nr;
	__u32 pad;
};

struct stat_key {
	__u32 nr;
	__u32 pad;
	__u64 cgroup_id;
	char comm[TASK_COMM_LEN];
};

struct stat_val {
	__u64 count;
	__u64 errors;
	__u64 total_ns;
	__u64 hist[HIST_BUCKETS];
};

struct errno_key {
	__u32 nr;
	__u32 err;
};

/* Syscalls in flight, in task-local storage (tp_btf programs, 5.11+). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct start);
} task_starts SEC(".maps");

/* Syscalls in flight, by thread (raw_tp and tracepoint programs). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct stat_key);
	__type(value, struct stat_val);
} stats SEC(".maps");

/* Syscalls that found "stats" full, by number: totals stay exact. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, struct stat_val);
} stats_overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2048);
	__type(key, struct errno_key);
	__type(value, __u64);
} errnos SEC(".maps");

/* Errors that found "errnos" full, by syscall number. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, __u64);
} errnos_overflow SEC(".maps");

/* Zero value to insert new stats entries from. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stat_val);
} zero_val SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

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

/* Whether a syscall entry is timed: not exit/exit_group, and filters pass. */
static __always_inline bool wanted(long id)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	/* exit and exit_group never return: nothing to time. */
	if (id < 0 || id == NR_EXIT || id == NR_EXIT_GROUP)
		return false;
	if (use_pid_filter && !bpf_map_lookup_elem(&filter_pids, &tgid))
		return false;
	return true;
}

static __always_inline int on_enter(long id)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct start s;

	if (!wanted(id))
		return 0;
	s.ts = bpf_ktime_get_ns();
	s.nr = id;
	s.pad = 0;
	bpf_map_update_elem(&starts, &tid, &s, BPF_ANY);
	return 0;
}

static __always_inline void account(struct stat_val *v, __u64 ns, bool failed)
{
	__u32 b = log2_u64(ns);

	b = b < 10 ? 0 : b - 9;
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	v->count++;
	v->total_ns += ns;
	if (failed)
		v->errors++;
	v->hist[b]++;
}

static __always_inline int account_exit(__u32 nr, __u64 ns, long ret)
{
	struct stat_key k = {.nr = nr};
	struct stat_val *v;
	__u32 zero = 0;
	bool failed;

	/* Negative errno values; fd-returning and other calls are >= 0. */
	failed = ret < 0 && ret >= -4095;
	if (key_cgroup)
		k.cgroup_id = bpf_get_current_cgroup_id();
	if (key_comm)
		bpf_get_current_comm(k.comm, sizeof(k.comm));

	v = bpf_map_lookup_elem(&stats, &k);
	if (!v) {
		struct stat_val *z = bpf_map_lookup_elem(&zero_val, &zero);

		/* Fails when another CPU inserted the key first or the map is full. */
		if (z)
			bpf_map_update_elem(&stats, &k, z, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&stats, &k);
		if (!v) {
			__u32 idx = k.nr & (MAX_NR - 1);

			v = bpf_map_lookup_elem(&stats_overflow, &idx);
		}
	}
	if (v)
		account(v, ns, failed);

	if (failed) {
		struct errno_key ek = {.nr = k.nr, .err = -ret};
		__u64 one = 1, *n = bpf_map_lookup_elem(&errnos, &ek);

		if (n) {
			(*n)++;
		} else if (bpf_map_update_elem(&errnos, &ek, &one, BPF_NOEXIST)) {
			n = bpf_map_lookup_elem(&errnos, &ek);
			if (!n) {
				__u32 idx = k.nr & (MAX_NR - 1);

				n = bpf_map_lookup_elem(&errnos_overflow, &idx);
			}
			if (n)
				(*n)++;
		}
	}
	return 0;
}

static __always_inline int on_exit(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct start *s = bpf_map_lookup_elem(&starts, &tid);
	__u64 ns;
	__u32 nr;

	if (!s)
		return 0;
	ns = bpf_ktime_get_ns() - s->ts;
	nr = s->nr;
	bpf_map_delete_elem(&starts, &tid);
	return account_exit(nr, ns, ret);
}

/*
 * The tp_btf pair keeps the start in task-local storage: no hash insert and
 * delete per syscall. User space attaches both programs of a pair through
 * the same hook kind, so the two sides always share a store.
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(tp_btf_sys_enter, struct pt_regs *regs, long id)
{
	struct start *s;

	if (!wanted(id))
		return 0;
	s = bpf_task_storage_get(&task_starts, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->ts = bpf_ktime_get_ns();
	s->nr = id;
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_tp_sys_enter, struct pt_regs *regs, long id)
{
	return on_enter(id);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(tp_btf_sys_exit, struct pt_regs *regs, long ret)
{
	struct start *s = bpf_task_storage_get(&task_starts, bpf_get_current_task_btf(), 0, 0);
	__u64 ts;

	if (!s || !s->ts)
		return 0;
	ts = s->ts;
	s->ts = 0;
	return account_exit(s->nr, bpf_ktime_get_ns() - ts, ret);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(raw_tp_sys_exit, struct pt_regs *regs, long ret)
{
	return on_exit(ret);
}

/* Stable prefix of the raw_syscalls:sys_enter / sys_exit tracepoint records. */
struct raw_enter_ctx {
	__u64 common;
	long id;
	unsigned long args[6];
};

struct raw_exit_ctx {
	__u64 common;
	long id;
	long ret;
};

SEC("tracepoint/raw_syscalls/sys_enter")
int tp_sys_enter(struct raw_enter_ctx *ctx)
{
	return on_enter(ctx->id);
}

SEC("tracepoint/raw_syscalls/sys_exit")
int tp_sys_exit(struct raw_exit_ctx *ctx)
{
	return on_exit(ctx->ret);
}

/* Keep the map types in BTF so bpf2go emits matching Go structs. */
const struct stat_key *unused_stat_key __attribute__((unused));
const struct stat_val *unused_stat_val __attribute__((unused));
const struct errno_key *unused_errno_key __attribute__((unused));
