//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * File opens from the open, openat, openat2 and creat syscall tracepoints.
 *
 * Every completed open is counted in the kernel by (cgroup id, errno); user
 * space reads those counts at scrape time. An event record crosses to user
 * space only while someone consumes open events (the "control" map) and when
 * the open passes the filters (pid, cgroup, comm, failed-only, path prefix).
 *
 * Relative paths are resolved in the kernel: the directory (the task's cwd or
 * the dirfd's file) is walked up its dentry chain to the task's root, crossing
 * mounts, and the passed path is appended. The record says whether its path
 * was absolute as passed, resolved, or could not be resolved.
 */
#include "vigil.h"
#include "vigil_ring.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PATH_BUF 4096	  /* bytes of path sent at most, NUL included */
#define MAX_DEPTH 48	  /* directory components walked */
#define MAX_MOUNTS 8	  /* mount crossings during a walk */
#define MAX_PREFIXES 8
#define PREFIX_WORDS 16	  /* 128 bytes per prefix */
#define AT_FDCWD_VAL -100
#define O_CREAT_VAL 0100
#define O_TMPFILE_VAL 020000000

#include "vigil_dentry_walk.h" /* after MAX_DEPTH and MAX_MOUNTS */

enum { SC_OPEN = 1, SC_OPENAT = 2, SC_OPENAT2 = 3, SC_CREAT = 4 };
enum { PATH_ABSOLUTE = 0, PATH_RESOLVED = 1, PATH_UNRESOLVED = 2 };
enum { EV_OPEN = 1 };

/* Knobs set by user space before load. */
volatile const __u32 self_tgid = 0;
volatile const bool failed_only = false;
volatile const bool use_pid_filter = false;
volatile const bool use_cgroup_filter = false;
volatile const bool use_comm_filter = false;
volatile const char comm_filter[TASK_COMM_LEN] = {};
volatile const __u32 n_prefixes = 0;
volatile const bool resolve_paths = true;
/* Wake the reader only once this many bytes wait (0: on every record). */
volatile const __u64 wakeup_bytes = 0;

/* Fixed part of an open record; the path follows it. */
struct open_head {
	__u8 kind;
	__u8 syscall;
	__u8 path_state;
	__u8 path_truncated;
	__u16 path_len; /* bytes of path, NUL excluded */
	__u16 dir_len;	/* resolved: path[dir_len] is the '/' before the path as passed */
	__s32 ret;
	__s32 dirfd;
	__u32 mode;
	__u32 pad;
	__u64 flags;
	__u64 ts_ns;
	struct vigil_proc proc;
};

struct open_event {
	struct open_head h;
	/* Twice the sent size so that masked offset + bounded length provably fit. */
	char path[2 * PATH_BUF];
};

struct open_args {
	__u64 fname;
	__u64 flags;
	__u32 mode;
	__s32 dirfd;
	__u8 syscall;
	__u8 pad[7];
};

struct count_key {
	__u64 cgroup_id;
	__u32 err; /* errno, 0 for success */
	__u32 pad;
};

struct prefix {
	__u32 len;
	__u32 pad;
	__u64 words[PREFIX_WORDS];
};

VIGIL_EVENTS_RINGBUF(1 << 22)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_event);
} scratch SEC(".maps");

/* Arguments from syscall entry, by thread, for opens that will be reported. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct open_args);
} inflight SEC(".maps");

/* Completed opens by cgroup and errno. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct count_key);
	__type(value, __u64);
} counts SEC(".maps");

/* Opens that found "counts" full, by errno: totals stay exact. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counts_overflow SEC(".maps");

/* control[0] != 0 while user space consumes open events. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PREFIXES);
	__type(key, __u32);
	__type(value, struct prefix);
} filter_prefixes SEC(".maps");

static __always_inline bool events_on(void)
{
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&control, &zero);

	return on && *on;
}

static __always_inline bool comm_matches(void)
{
	char comm[TASK_COMM_LEN];

	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != comm_filter[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

static __always_inline int on_enter(__u8 sc, __s32 dirfd, __u64 fname, __u64 flags, __u32 mode)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct open_args a = {};

	if (!events_on() || tgid == self_tgid)
		return 0;
	if (use_pid_filter && !bpf_map_lookup_elem(&filter_pids, &tgid))
		return 0;
	if (use_cgroup_filter) {
		__u64 cg = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&filter_cgroups, &cg))
			return 0;
	}
	if (use_comm_filter && !comm_matches())
		return 0;
	a.fname = fname;
	a.flags = flags;
	a.mode = mode;
	a.dirfd = dirfd;
	a.syscall = sc;
	bpf_map_update_elem(&inflight, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int tp_enter_open(struct syscall_enter_ctx *ctx)
{
	return on_enter(SC_OPEN, AT_FDCWD_VAL, ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_enter_openat(struct syscall_enter_ctx *ctx)
{
	return on_enter(SC_OPENAT, (__s32)ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int tp_enter_openat2(struct syscall_enter_ctx *ctx)
{
	struct open_how how = {};

	/* On a fault the exit reports the error; flags and mode stay zero. */
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return on_enter(SC_OPENAT2, (__s32)ctx->args[0], ctx->args[1], how.flags, how.mode);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int tp_enter_creat(struct syscall_enter_ctx *ctx)
{
	/* creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode). */
	return on_enter(SC_CREAT, AT_FDCWD_VAL, ctx->args[0], 01 | 0100 | 01000, ctx->args[1]);
}

static __always_inline void count_open(__s64 ret)
{
	struct count_key k = {.cgroup_id = bpf_get_current_cgroup_id()};
	__u64 one = 1, *v;

	k.err = ret < 0 ? (__u32)-ret : 0;
	v = bpf_map_lookup_elem(&counts, &k);
	if (v) {
		(*v)++;
		return;
	}
	if (bpf_map_update_elem(&counts, &k, &one, BPF_NOEXIST) == 0)
		return;
	/* Raced with another CPU inserting the key, or the map is full. */
	v = bpf_map_lookup_elem(&counts, &k);
	if (v) {
		(*v)++;
		return;
	}
	__u32 idx = k.err & 0xff;
	v = bpf_map_lookup_elem(&counts_overflow, &idx);
	if (v)
		(*v)++;
}

/*
 * The path assembly and the prefix match run as bpf_loop callbacks (5.17+),
 * like the directory walk (vigil_dentry_walk.h), so the verifier checks each
 * body once instead of every path through an unrolled loop.
 */
struct write_ctx {
	int n;
	__u32 pos;
	int err;
};

static long write_step(__u32 j, void *arg)
{
	struct write_ctx *c = arg;
	__u32 zero = 0, len;
	struct open_event *e = bpf_map_lookup_elem(&scratch, &zero);
	struct walk *w = bpf_map_lookup_elem(&walk_scratch, &zero);
	int idx = c->n - 1 - (int)j;
	__u64 off;

	if (!e || !w || idx < 0 || idx >= MAX_DEPTH) {
		c->err = 1;
		return 1;
	}
	len = w->lens[idx];
	if (len > 255 || c->pos + 1 + len >= PATH_BUF - 1) {
		c->err = 1;
		return 1;
	}
	off = c->pos;
	asm volatile("%[off] &= 4095" : [off] "+r"(off));
	e->path[off] = '/';
	off = c->pos + 1;
	asm volatile("%[off] &= 4095" : [off] "+r"(off));
	if (bpf_probe_read_kernel(&e->path[off], len & 0xff, (void *)w->names[idx])) {
		c->err = 1;
		return 1;
	}
	c->pos += 1 + len;
	return 0;
}

/*
 * Write "/c1/c2/.../cn" into the scratch record's path from offset 0;
 * returns its length, or -1 if it does not fit.
 */
static __always_inline int write_dir(int n)
{
	struct write_ctx c = {.n = n};

	if (n <= 0)
		return 0;
	bpf_loop(n, write_step, &c, 0);
	return c.err ? -1 : (int)c.pos;
}

/* Directory a relative path is resolved against, or false if unknown. */
static __always_inline bool base_dir(struct task_struct *task, __s32 dirfd, struct path *dir)
{
	if (dirfd == AT_FDCWD_VAL) {
		BPF_CORE_READ_INTO(dir, task, fs, pwd);
		return true;
	}
	if (dirfd < 0)
		return false;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (!fdt || (unsigned int)dirfd >= BPF_CORE_READ(fdt, max_fds))
		return false;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[dirfd]) || !f)
		return false;
	BPF_CORE_READ_INTO(dir, f, f_path);
	return true;
}

struct prefix_ctx {
	__u32 path_len;
	int matched;
};

static long prefix_step(__u32 i, void *arg)
{
	struct prefix_ctx *c = arg;
	__u32 zero = 0;
	struct open_event *e = bpf_map_lookup_elem(&scratch, &zero);
	struct prefix *p = bpf_map_lookup_elem(&filter_prefixes, &i);

	if (!e || !p || p->len > c->path_len || p->len > PREFIX_WORDS * 8)
		return 0;
	for (__u32 w = 0; w < PREFIX_WORDS; w++) {
		__u32 off = w * 8;
		__u64 mask = ~0ULL, word;

		if (off >= p->len)
			break;
		if (p->len - off < 8)
			mask = (1ULL << ((p->len - off) * 8)) - 1;
		word = *(__u64 *)&e->path[off];
		if ((word ^ p->words[w]) & mask)
			return 0;
	}
	c->matched = 1;
	return 1;
}

static __always_inline bool prefix_matches(struct open_event *e)
{
	struct prefix_ctx c = {.path_len = e->h.path_len};

	bpf_loop(n_prefixes < MAX_PREFIXES ? n_prefixes : MAX_PREFIXES, prefix_step, &c, 0);
	return c.matched;
}

static __always_inline int on_exit(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct open_args *a;
	struct open_event *e;
	__u32 zero = 0, pos = 0;
	__s64 ret = ctx->ret;
	long n;

	count_open(ret);
	if (!events_on())
		return 0; /* counts only: skip the inflight lookup */
	a = bpf_map_lookup_elem(&inflight, &tid);
	if (!a)
		return 0;
	if (failed_only && ret >= 0)
		goto out;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		goto out;

	task = (struct task_struct *)bpf_get_current_task();
	e->h.kind = EV_OPEN;
	e->h.syscall = a->syscall;
	e->h.path_state = PATH_ABSOLUTE;
	e->h.path_truncated = 0;
	e->h.dir_len = 0;
	e->h.ret = ret;
	e->h.dirfd = a->dirfd;
	e->h.mode = (a->flags & (O_CREAT_VAL | O_TMPFILE_VAL)) ? a->mode : 0;
	e->h.pad = 0;
	e->h.flags = a->flags;
	e->h.ts_ns = bpf_ktime_get_boot_ns();
	vigil_fill_proc(&e->h.proc);

	char first = 0;
	bpf_probe_read_user(&first, 1, (void *)a->fname);
	if (first != '/') {
		struct path dir = {}, root = {};
		int nd = -1, dl = -1;

		e->h.path_state = PATH_UNRESOLVED;
		if (resolve_paths && base_dir(task, a->dirfd, &dir)) {
			BPF_CORE_READ_INTO(&root, task, fs, root);
			nd = walk_dir(dir.dentry, dir.mnt, &root);
		}
		if (nd >= 0)
			dl = write_dir(nd);
		if (dl >= 0) {
			e->h.path_state = PATH_RESOLVED;
			e->h.dir_len = dl;
			pos = dl & (PATH_BUF - 1);
			e->path[pos] = '/';
			pos++;
		}
	}
	__u64 off = pos;
	/* Opaque to the compiler, so the verifier sees the mask. */
	asm volatile("%[off] &= 4095" : [off] "+r"(off));
	n = bpf_probe_read_user_str(&e->path[off], PATH_BUF, (void *)a->fname);
	if (n <= 0) {
		n = 1;
		e->path[off] = 0;
	}
	if (n == PATH_BUF)
		e->h.path_truncated = 1;
	pos += n - 1;
	if (pos > PATH_BUF - 1) {
		pos = PATH_BUF - 1;
		e->h.path_truncated = 1;
	}
	e->path[pos & (PATH_BUF - 1)] = 0;
	e->h.path_len = pos;

	if (n_prefixes && !prefix_matches(e))
		goto out;

	/* pos <= PATH_BUF - 1, so size <= PATH_BUF; the mask shows the verifier. */
	__u64 size = pos + 1;
	asm volatile("%[size] &= 8191" : [size] "+r"(size));
	__u64 flags = 0;
	if (wakeup_bytes)
		flags = vigil_ring_flags(&events, wakeup_bytes);
	if (bpf_ringbuf_output(&events, e, offsetof(struct open_event, path) + size, flags))
		count_drop();
out:
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int tp_exit_open(struct syscall_exit_ctx *ctx)
{
	return on_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int tp_exit_openat(struct syscall_exit_ctx *ctx)
{
	return on_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int tp_exit_openat2(struct syscall_exit_ctx *ctx)
{
	return on_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int tp_exit_creat(struct syscall_exit_ctx *ctx)
{
	return on_exit(ctx);
}

/* Keep the record types in BTF so bpf2go emits matching Go structs. */
const struct open_head *unused_open_head __attribute__((unused));
const struct vigil_proc *unused_vigil_proc __attribute__((unused));
const struct count_key *unused_count_key __attribute__((unused));
const struct prefix *unused_prefix __attribute__((unused));
