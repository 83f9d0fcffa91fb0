//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Process lifecycle: exec, fork, exit from the sched tracepoints, plus failed
 * execs from the execve syscall tracepoints. Each sched program exists as a
 * tp_btf and a raw_tp variant; user space attaches the first that works.
 */
#include "vigil.h"
#include "vigil_ring.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FILENAME_BUF 512
#define ARGS_BUF 8192
#define MAX_ARGV_SCAN 64

enum {
	EV_EXEC = 1,
	EV_EXIT = 2,
	EV_FORK = 3,
	EV_EXEC_FAILED = 4,
};

/* Knobs set by user space before load. */
volatile const __u32 max_args_bytes = 4096;
volatile const bool emit_forks = true;

/* Fixed part of an exec record; the argument area follows it. */
struct exec_head {
	__u8 kind;
	__u8 args_truncated;
	__u16 filename_len;
	__u32 args_len;
	__s32 retval;
	__u32 pad;
	__u64 ts_ns;
	struct vigil_proc proc;
	char filename[FILENAME_BUF];
};

struct exec_event {
	struct exec_head h;
	/* Twice the limit so that masked offset + masked length provably fit. */
	char args[2 * ARGS_BUF];
};

struct exit_event {
	__u8 kind;
	__u8 pad[3];
	__u32 exit_code;
	__u64 ts_ns;
	struct vigil_proc proc;
};

/* proc is the parent's (the forking task's) context. */
struct fork_event {
	__u8 kind;
	__u8 pad[3];
	__u32 child_pid;
	__u64 ts_ns;
	__u64 child_start_ns;
	struct vigil_proc proc;
};

VIGIL_EVENTS_RINGBUF(1 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} exec_scratch SEC(".maps");

/* execve arguments remembered from syscall entry, to report failed execs. */
struct exec_args {
	__u64 filename;
	__u64 argv;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct exec_args);
} inflight_execs SEC(".maps");

/*
 * Wake the reader for the first record after a quiet spell and whenever the
 * ring is an eighth full; in between, user space collects records on its
 * poll interval (vigil_ring.h), so an exec storm costs one wakeup per batch
 * instead of one per record, and an idle host costs no polling.
 */
static __always_inline __u64 wakeup_flags(void)
{
	return vigil_ring_flags(&events, bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 8);
}

static __always_inline struct exec_event *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&exec_scratch, &zero);
}

static __always_inline void submit_exec(struct exec_event *e)
{
	__u64 len = e->h.args_len;

	/* args_len < ARGS_BUF always; the opaque mask lets the verifier see it. */
	asm volatile("%[len] &= 8191" : [len] "+r"(len));
	if (bpf_ringbuf_output(&events, e, offsetof(struct exec_event, args) + len, wakeup_flags()))
		count_drop();
}

/* The argument area of the new image lives between mm->arg_start and arg_end. */
static __always_inline int handle_exec(struct task_struct *task, struct linux_binprm *bprm)
{
	struct exec_event *e = scratch();
	unsigned long start, end;
	__u64 len;
	long n;

	if (!e)
		return 0;
	e->h.kind = EV_EXEC;
	e->h.retval = 0;
	e->h.args_truncated = 0;
	e->h.ts_ns = bpf_ktime_get_boot_ns();
	vigil_fill_proc(&e->h.proc);

	n = bpf_probe_read_kernel_str(e->h.filename, sizeof(e->h.filename), BPF_CORE_READ(bprm, filename));
	e->h.filename_len = n > 0 ? n - 1 : 0;

	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > max_args_bytes) {
		len = max_args_bytes;
		e->h.args_truncated = 1;
	}
	if (len > ARGS_BUF - 1) {
		len = ARGS_BUF - 1;
		e->h.args_truncated = 1;
	}
	if (len && bpf_probe_read_user(e->args, len, (void *)start))
		len = 0;
	e->h.args_len = len;
	submit_exec(e);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tp_btf_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle_exec(p, bprm);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(raw_tp_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle_exec(p, bprm);
}

static __always_inline int handle_fork(struct task_struct *parent, struct task_struct *child)
{
	struct fork_event e = {};

	/* Threads share the process; only new processes are lifecycle events. */
	if (!emit_forks || BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	e.kind = EV_FORK;
	e.child_pid = BPF_CORE_READ(child, tgid);
	e.ts_ns = bpf_ktime_get_boot_ns();
	e.child_start_ns = BPF_CORE_READ(child, start_boottime);
	/* The hook runs in the parent: current is the forking task. */
	vigil_fill_proc(&e.proc);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), wakeup_flags()))
		count_drop();
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tp_btf_fork, struct task_struct *parent, struct task_struct *child)
{
	return handle_fork(parent, child);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(raw_tp_fork, struct task_struct *parent, struct task_struct *child)
{
	return handle_fork(parent, child);
}

/*
 * sched_process_exit fires for every thread; the process ends with the thread
 * that drops signal->live to zero. Since Linux 6.16 the tracepoint says so in
 * its group_dead argument; the *_gd programs use it and fail to load (or
 * attach) on older kernels, where the fallback reads signal->live. Several
 * threads exiting at once can all read zero there, so the fallback also lets
 * only the first thread of a (tgid, start time) report, atomically.
 */
struct exit_key {
	__u32 tgid;
	__u32 pad;
	__u64 start_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exit_key);
	__type(value, __u8);
} exit_reported SEC(".maps");

static __always_inline int emit_exit(struct task_struct *task)
{
	struct exit_event e = {};

	e.kind = EV_EXIT;
	e.exit_code = BPF_CORE_READ(task, exit_code);
	e.ts_ns = bpf_ktime_get_boot_ns();
	/* The exiting task is current; exit_notify has not reparented it yet. */
	vigil_fill_proc(&e.proc);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), wakeup_flags()))
		count_drop();
	return 0;
}

static __always_inline int handle_exit_live(struct task_struct *task)
{
	struct exit_key k = {};
	__u8 one = 1;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	k.tgid = BPF_CORE_READ(task, tgid);
	k.start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	if (bpf_map_update_elem(&exit_reported, &k, &one, BPF_NOEXIST))
		return 0; /* another thread of this process reported it */
	return emit_exit(task);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tp_btf_exit_gd, struct task_struct *p, bool group_dead)
{
	return group_dead ? emit_exit(p) : 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_tp_exit_gd, struct task_struct *p, bool group_dead)
{
	return group_dead ? emit_exit(p) : 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tp_btf_exit, struct task_struct *p)
{
	return handle_exit_live(p);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_tp_exit, struct task_struct *p)
{
	return handle_exit_live(p);
}

static __always_inline int remember_exec(const char *filename, const char *const *argv)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct exec_args a = {.filename = (__u64)filename, .argv = (__u64)argv};

	bpf_map_update_elem(&inflight_execs, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int tp_enter_execve(struct syscall_enter_ctx *ctx)
{
	return remember_exec((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int tp_enter_execveat(struct syscall_enter_ctx *ctx)
{
	return remember_exec((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

/* A failed exec leaves the caller's memory intact, so argv can be read now. */
static __always_inline int report_failed_exec(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct exec_args *a = bpf_map_lookup_elem(&inflight_execs, &tid);
	struct exec_event *e;
	__u32 off = 0;
	long n;

	if (!a)
		return 0;
	if (ctx->ret >= 0)
		goto out;
	e = scratch();
	if (!e)
		goto out;
	e->h.kind = EV_EXEC_FAILED;
	e->h.retval = ctx->ret;
	e->h.args_truncated = 0;
	e->h.ts_ns = bpf_ktime_get_boot_ns();
	vigil_fill_proc(&e->h.proc);
	n = bpf_probe_read_user_str(e->h.filename, sizeof(e->h.filename), (const char *)a->filename);
	e->h.filename_len = n > 0 ? n - 1 : 0;

	int i;

	for (i = 0; i < MAX_ARGV_SCAN; i++) {
		const char *arg = NULL;
		__u64 at = off;

		if (bpf_probe_read_user(&arg, sizeof(arg), &((const char *const *)a->argv)[i]) || !arg)
			break;
		if (off >= max_args_bytes || off >= ARGS_BUF - 1) {
			e->h.args_truncated = 1;
			break;
		}
		/* Opaque to the compiler, so the verifier sees the mask. */
		asm volatile("%[at] &= 8191" : [at] "+r"(at));
		n = bpf_probe_read_user_str(&e->args[at], ARGS_BUF, arg);
		if (n <= 0)
			break;
		off += n;
	}
	/* All MAX_ARGV_SCAN slots used: more arguments mean the list is cut. */
	if (i == MAX_ARGV_SCAN) {
		const char *arg = NULL;

		if (!bpf_probe_read_user(&arg, sizeof(arg), &((const char *const *)a->argv)[MAX_ARGV_SCAN]) && arg)
			e->h.args_truncated = 1;
	}
	if (off > max_args_bytes) {
		off = max_args_bytes;
		e->h.args_truncated = 1;
	}
	e->h.args_len = off > ARGS_BUF - 1 ? ARGS_BUF - 1 : off;
	submit_exec(e);
out:
	bpf_map_delete_elem(&inflight_execs, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int tp_exit_execve(struct syscall_exit_ctx *ctx)
{
	return report_failed_exec(ctx);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int tp_exit_execveat(struct syscall_exit_ctx *ctx)
{
	return report_failed_exec(ctx);
}

/* Keep the record types in BTF so bpf2go emits matching Go structs. */
const struct exec_head *unused_exec_head __attribute__((unused));
const struct vigil_proc *unused_vigil_proc __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const struct fork_event *unused_fork_event __attribute__((unused));
