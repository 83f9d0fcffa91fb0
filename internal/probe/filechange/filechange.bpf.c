//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * File changes from syscall tracepoints: unlink, rmdir, rename, truncate,
 * chmod, chown, link, symlink and mkdir, in their direct, at- and fd-based
 * forms.
 *
 * The entry program saves the arguments by thread; the exit program (one
 * for every syscall, all alike) resolves the path arguments to absolute
 * paths (dirfd- or cwd-relative ones are joined to the directory's path,
 * fd-based calls take the fd's file path), looks them up in an LPM-trie
 * filter of watched trees, counts the call by (op, watched, failed), and
 * sends a record only for watched paths while user space consumes events.
 */
#include "vigil.h"
#include "vigil_ring.h"
#include "vigil_path_filter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PATH_BUF 4096	/* bytes of one path sent at most, NUL included */
#define MAX_DEPTH 48	/* directory components walked */
#define MAX_MOUNTS 8	/* mount crossings during a walk */
#define MAX_WATCHED 256 /* prefixes the filter holds */
#define AT_FDCWD_VAL -100
#define AT_REMOVEDIR_VAL 0x200
#define AT_EMPTY_PATH_VAL 0x1000

#include "vigil_dentry_walk.h" /* after MAX_DEPTH and MAX_MOUNTS */

enum {
	FC_UNLINK = 1,
	FC_RMDIR,
	FC_RENAME,
	FC_TRUNCATE,
	FC_CHMOD,
	FC_CHOWN,
	FC_LINK,
	FC_SYMLINK,
	FC_MKDIR,
	FC_OPEN_WRITE,
	FC_MAX,
};

enum {
	SC_UNLINK = 1,
	SC_UNLINKAT,
	SC_RMDIR,
	SC_RENAME,
	SC_RENAMEAT,
	SC_RENAMEAT2,
	SC_TRUNCATE,
	SC_FTRUNCATE,
	SC_CHMOD,
	SC_FCHMOD,
	SC_FCHMODAT,
	SC_FCHMODAT2,
	SC_CHOWN,
	SC_FCHOWN,
	SC_LCHOWN,
	SC_FCHOWNAT,
	SC_LINK,
	SC_LINKAT,
	SC_SYMLINK,
	SC_SYMLINKAT,
	SC_MKDIR,
	SC_MKDIRAT,
	SC_OPEN,
	SC_OPENAT,
	SC_OPENAT2,
	SC_CREAT,
};

/* Open flags that mean the file's content or existence may change. */
#define WRITE_FLAGS (01 | 02 | 0100 | 01000) /* O_WRONLY O_RDWR O_CREAT O_TRUNC */
#define O_CREAT_VAL 0100
#define O_TMPFILE_VAL 020000000

/* How a path was obtained. */
enum { PATH_ABSOLUTE = 0, PATH_RESOLVED = 1, PATH_UNRESOLVED = 2, PATH_FD = 3, PATH_RAW = 4, PATH_NONE = 5 };

/* How an argument is turned into a path. */
enum { ARG_NONE = 0, ARG_PATH = 1, ARG_FD = 2, ARG_RAW = 3 };

enum { EV_FILE_CHANGE = 1 };

/* Knobs set by user space before load. */
volatile const __u32 self_tgid = 0;
volatile const bool resolve_paths = true;
/* No prefix configured: every path is watched. */
volatile const bool watch_all = false;
/* Wake the reader only once this many bytes wait (0: on every record). */
volatile const __u64 wakeup_bytes = 0;

/* Fixed part of a record; path, NUL, path2, NUL follow it. */
struct fc_head {
	__u8 kind;
	__u8 op;
	__u8 syscall;
	__u8 path_state;
	__u8 path2_state;
	__u8 truncated; /* bit 0: path, bit 1: path2 */
	__u16 path_len;	/* bytes, NUL excluded */
	__u16 path2_len;
	__u16 pad;
	__s32 ret;
	__s32 dirfd; /* dirfd or fd of the first path (-100: AT_FDCWD) */
	__s32 dirfd2;
	__u32 mode;
	__u32 uid; /* chown: new owner, (u32)-1 unchanged */
	__u32 gid;
	__u32 flags;
	__u32 watched; /* 1 + index of the watched prefix that matched, 0: every path watched, or unresolved */
	__s64 length;  /* truncate */
	__u64 ts_ns;
	struct vigil_proc proc;
};

struct fc_event {
	struct fc_head h;
	/* Room for two sent paths behind masked offsets. */
	char buf[3 * PATH_BUF];
};

struct fc_args {
	__u64 p1;
	__u64 p2;
	__s32 d1;
	__s32 d2;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 flags;
	__s64 length;
	__u8 op;
	__u8 syscall;
	__u8 a1; /* ARG_* of the first path */
	__u8 a2;
	__u32 pad;
};

/* One path under construction. */
struct pathbuf {
	char b[2 * PATH_BUF];
};

VIGIL_EVENTS_RINGBUF(1 << 20)

VIGIL_PATH_FILTER(watched, MAX_WATCHED);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fc_event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct pathbuf);
} paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_path_key);
} key_scratch SEC(".maps");

/* Arguments from syscall entry, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fc_args);
} inflight SEC(".maps");

/* Calls by op, watched or not, failed or not: index op * 4 + watched * 2 + failed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FC_MAX * 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* control[0] != 0 while user space consumes file_change events. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

static __always_inline int save(struct fc_args *a)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if ((id >> 32) == self_tgid)
		return 0;
	bpf_map_update_elem(&inflight, &tid, a, BPF_ANY);
	return 0;
}

#define ARGS(o, sc) struct fc_args a = {.op = (o), .syscall = (sc), .d1 = AT_FDCWD_VAL, .d2 = AT_FDCWD_VAL}

SEC("tracepoint/syscalls/sys_enter_unlink")
int tp_enter_unlink(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_UNLINK, SC_UNLINK);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_unlinkat")
int tp_enter_unlinkat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_UNLINK, SC_UNLINKAT);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1], a.flags = ctx->args[2];
	if (a.flags & AT_REMOVEDIR_VAL)
		a.op = FC_RMDIR;
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_rmdir")
int tp_enter_rmdir(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_RMDIR, SC_RMDIR);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_rename")
int tp_enter_rename(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_RENAME, SC_RENAME);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.a2 = ARG_PATH, a.p2 = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_renameat")
int tp_enter_renameat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_RENAME, SC_RENAMEAT);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1];
	a.a2 = ARG_PATH, a.d2 = ctx->args[2], a.p2 = ctx->args[3];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_renameat2")
int tp_enter_renameat2(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_RENAME, SC_RENAMEAT2);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1];
	a.a2 = ARG_PATH, a.d2 = ctx->args[2], a.p2 = ctx->args[3];
	a.flags = ctx->args[4];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_truncate")
int tp_enter_truncate(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_TRUNCATE, SC_TRUNCATE);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.length = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_ftruncate")
int tp_enter_ftruncate(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_TRUNCATE, SC_FTRUNCATE);
	a.a1 = ARG_FD, a.d1 = ctx->args[0], a.length = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_chmod")
int tp_enter_chmod(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHMOD, SC_CHMOD);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.mode = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_fchmod")
int tp_enter_fchmod(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHMOD, SC_FCHMOD);
	a.a1 = ARG_FD, a.d1 = ctx->args[0], a.mode = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_fchmodat")
int tp_enter_fchmodat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHMOD, SC_FCHMODAT);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1], a.mode = ctx->args[2];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_fchmodat2")
int tp_enter_fchmodat2(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHMOD, SC_FCHMODAT2);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1], a.mode = ctx->args[2];
	a.flags = ctx->args[3];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_chown")
int tp_enter_chown(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHOWN, SC_CHOWN);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.uid = ctx->args[1], a.gid = ctx->args[2];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_lchown")
int tp_enter_lchown(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHOWN, SC_LCHOWN);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.uid = ctx->args[1], a.gid = ctx->args[2];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_fchown")
int tp_enter_fchown(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHOWN, SC_FCHOWN);
	a.a1 = ARG_FD, a.d1 = ctx->args[0], a.uid = ctx->args[1], a.gid = ctx->args[2];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_fchownat")
int tp_enter_fchownat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_CHOWN, SC_FCHOWNAT);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1], a.uid = ctx->args[2], a.gid = ctx->args[3];
	a.flags = ctx->args[4];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_link")
int tp_enter_link(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_LINK, SC_LINK);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.a2 = ARG_PATH, a.p2 = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_linkat")
int tp_enter_linkat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_LINK, SC_LINKAT);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1];
	a.a2 = ARG_PATH, a.d2 = ctx->args[2], a.p2 = ctx->args[3];
	a.flags = ctx->args[4];
	return save(&a);
}

/* symlink(target, linkpath): the target is text stored in the link, kept as passed. */
SEC("tracepoint/syscalls/sys_enter_symlink")
int tp_enter_symlink(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_SYMLINK, SC_SYMLINK);
	a.a1 = ARG_RAW, a.p1 = ctx->args[0], a.a2 = ARG_PATH, a.p2 = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_symlinkat")
int tp_enter_symlinkat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_SYMLINK, SC_SYMLINKAT);
	a.a1 = ARG_RAW, a.p1 = ctx->args[0], a.a2 = ARG_PATH, a.d2 = ctx->args[1], a.p2 = ctx->args[2];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_mkdir")
int tp_enter_mkdir(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_MKDIR, SC_MKDIR);
	a.a1 = ARG_PATH, a.p1 = ctx->args[0], a.mode = ctx->args[1];
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_mkdirat")
int tp_enter_mkdirat(struct syscall_enter_ctx *ctx)
{
	ARGS(FC_MKDIR, SC_MKDIRAT);
	a.a1 = ARG_PATH, a.d1 = ctx->args[0], a.p1 = ctx->args[1], a.mode = ctx->args[2];
	return save(&a);
}

/*
 * Opens for writing: the way most files are created, rewritten or appended
 * to (echo >> authorized_keys, cp into /etc/cron.d). Read-only opens, by
 * far the most, return after the flag test.
 */
static __always_inline int save_open(__u8 sc, __s32 dirfd, __u64 path, __u64 flags, __u32 mode)
{
	if (!(flags & WRITE_FLAGS))
		return 0;
	ARGS(FC_OPEN_WRITE, sc);
	a.a1 = ARG_PATH, a.d1 = dirfd, a.p1 = path, a.flags = flags;
	if (flags & (O_CREAT_VAL | O_TMPFILE_VAL))
		a.mode = mode;
	return save(&a);
}

SEC("tracepoint/syscalls/sys_enter_open")
int tp_enter_open(struct syscall_enter_ctx *ctx)
{
	return save_open(SC_OPEN, AT_FDCWD_VAL, ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_enter_openat(struct syscall_enter_ctx *ctx)
{
	return save_open(SC_OPENAT, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int tp_enter_openat2(struct syscall_enter_ctx *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return save_open(SC_OPENAT2, ctx->args[0], ctx->args[1], how.flags, how.mode);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int tp_enter_creat(struct syscall_enter_ctx *ctx)
{
	/* creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode). */
	return save_open(SC_CREAT, AT_FDCWD_VAL, ctx->args[0], 01 | 0100 | 01000, ctx->args[1]);
}

/*
 * The path assembly runs as a bpf_loop callback, like the directory walk
 * (vigil_dentry_walk.h), so the verifier checks its body once.
 */
struct write_ctx {
	int n;
	__u32 slot;
	__u32 pos;
	int err;
};

static long write_step(__u32 j, void *arg)
{
	struct write_ctx *c = arg;
	__u32 zero = 0, len, slot = c->slot;
	struct pathbuf *pb = bpf_map_lookup_elem(&paths, &slot);
	struct walk *w = bpf_map_lookup_elem(&walk_scratch, &zero);
	int idx = c->n - 1 - (int)j;
	__u64 off;

	if (!pb || !w || idx < 0 || idx >= MAX_DEPTH) {
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
	pb->b[off] = '/';
	off = c->pos + 1;
	asm volatile("%[off] &= 4095" : [off] "+r"(off));
	if (bpf_probe_read_kernel(&pb->b[off], len & 0xff, (void *)w->names[idx])) {
		c->err = 1;
		return 1;
	}
	c->pos += 1 + len;
	return 0;
}

/* Write "/c1/.../cn" at the start of paths[slot]; its length, or -1. */
static __always_inline int write_dir(__u32 slot, int n)
{
	struct write_ctx c = {.n = n, .slot = slot};

	if (n <= 0)
		return 0;
	bpf_loop(n, write_step, &c, 0);
	return c.err ? -1 : (int)c.pos;
}

/* The file open at fd in task, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *task, __s32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (fd < 0 || !fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

/* The directory at dirfd (or the cwd), false if unknown. */
static __always_inline bool dir_of(struct task_struct *task, __s32 dirfd, struct path *dir)
{
	struct file *f;

	if (dirfd == AT_FDCWD_VAL) {
		BPF_CORE_READ_INTO(dir, task, fs, pwd);
		return true;
	}
	f = fd_file(task, dirfd);
	if (!f)
		return false;
	BPF_CORE_READ_INTO(dir, f, f_path);
	return true;
}

/* Absolute path of (dentry, mnt) into paths[slot]; its length or -1. */
static __always_inline int path_of(struct task_struct *task, __u32 slot, struct path *p)
{
	struct path root = {};
	int n;

	BPF_CORE_READ_INTO(&root, task, fs, root);
	n = walk_dir(p->dentry, p->mnt, &root);
	if (n < 0)
		return -1;
	return write_dir(slot, n);
}

/*
 * Build an argument's path in paths[slot]. Returns its length (NUL
 * excluded) | state << 16 | truncated << 24. A global function, so the
 * verifier checks it once per program rather than at each call in the
 * context of every branch before it.
 */
__attribute__((noinline)) __u32 build_path(__u32 slot, __u32 kind, __s32 dirfd, __u64 upath)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct pathbuf *pb = bpf_map_lookup_elem(&paths, &slot);
	__u32 pos = 0, state, truncated = 0;
	long n;

	if (!pb)
		return PATH_NONE << 16;
	pb->b[0] = 0;
	if (kind == ARG_NONE)
		return PATH_NONE << 16;
	if (kind == ARG_FD) {
		struct path p = {};
		int l = -1;
		struct file *f = resolve_paths ? fd_file(task, dirfd) : NULL;

		if (f) {
			BPF_CORE_READ_INTO(&p, f, f_path);
			l = path_of(task, slot, &p);
		}
		if (l < 0)
			return PATH_UNRESOLVED << 16;
		if (l == 0) {
			pb->b[0] = '/';
			l = 1;
		}
		pb->b[l & (PATH_BUF - 1)] = 0;
		return (l & (PATH_BUF - 1)) | PATH_FD << 16;
	}

	char first = 0;
	bpf_probe_read_user(&first, 1, (void *)upath);
	state = kind == ARG_RAW ? PATH_RAW : PATH_ABSOLUTE;
	if (kind == ARG_PATH && first != '/') {
		struct path dir = {};
		int dl = -1;

		state = PATH_UNRESOLVED;
		if (resolve_paths && dir_of(task, dirfd, &dir))
			dl = path_of(task, slot, &dir);
		if (dl >= 0) {
			state = PATH_RESOLVED;
			pos = dl & (PATH_BUF - 1);
			if (!first) {
				/* AT_EMPTY_PATH: the dirfd's own file. */
				if (pos == 0)
					pb->b[pos++] = '/';
				pb->b[pos & (PATH_BUF - 1)] = 0;
				return pos | state << 16;
			}
			pb->b[pos] = '/';
			pos++;
		}
	}
	__u64 off = pos;
	asm volatile("%[off] &= 4095" : [off] "+r"(off));
	n = bpf_probe_read_user_str(&pb->b[off], PATH_BUF, (void *)upath);
	if (n <= 0) {
		n = 1;
		pb->b[off] = 0;
	}
	if (n == PATH_BUF)
		truncated = 1;
	pos += n - 1;
	if (pos > PATH_BUF - 1) {
		pos = PATH_BUF - 1;
		truncated = 1;
	}
	pb->b[pos & (PATH_BUF - 1)] = 0;
	return pos | state << 16 | truncated << 24;
}

/* 1 + the matching prefix's index if paths[slot] is watched, else 0. */
static __always_inline __u32 watched_slot(__u32 slot, __u32 len)
{
	__u32 zero = 0, *id;
	struct pathbuf *pb = bpf_map_lookup_elem(&paths, &slot);
	struct vigil_path_key *k = bpf_map_lookup_elem(&key_scratch, &zero);

	if (!pb || !k || !len)
		return 0;
	id = vigil_path_filter_match(&watched, k, pb->b, len);
	return id ? *id + 1 : 0;
}

static __always_inline void count(__u8 op, bool w, bool failed)
{
	__u32 idx = (__u32)op * 4 + (w ? 2 : 0) + (failed ? 1 : 0);
	__u64 *v = bpf_map_lookup_elem(&counts, &idx);

	if (v)
		(*v)++;
}

static __always_inline bool events_on(void)
{
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&control, &zero);

	return on && *on;
}

/* Copy paths[slot] (len bytes and a NUL) to e->buf at off. */
static __always_inline void put(struct fc_event *e, __u32 slot, __u32 off, __u32 len)
{
	struct pathbuf *pb = bpf_map_lookup_elem(&paths, &slot);
	__u64 o = off, size = len + 1;

	if (!pb)
		return;
	/* o <= PATH_BUF: the second path starts right after a full first one. */
	asm volatile("%[o] &= 8191" : [o] "+r"(o));
	if (size > PATH_BUF)
		size = PATH_BUF;
	asm volatile("%[size] &= 8191" : [size] "+r"(size));
	if (size > PATH_BUF)
		return;
	bpf_probe_read_kernel(&e->buf[o], size, pb->b);
}

SEC("tracepoint/syscalls/sys_exit_unlink")
int tp_exit(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fc_args *a = bpf_map_lookup_elem(&inflight, &tid);
	__u32 zero = 0, len1, len2, r1, r2, w = 0;
	bool pass;
	__u8 s1, s2, t1, t2;
	__s64 ret = ctx->ret;
	struct fc_event *e;

	if (!a)
		return 0;
	r1 = build_path(0, a->a1, a->d1, a->p1);
	r2 = build_path(1, a->a2, a->d2, a->p2);
	len1 = r1 & 0xffff, s1 = (r1 >> 16) & 0xff, t1 = r1 >> 24;
	len2 = r2 & 0xffff, s2 = (r2 >> 16) & 0xff, t2 = r2 >> 24;
	if (watch_all) {
		pass = true;
	} else {
		/* A symlink's target is text, not a file this call changes. */
		if (a->a1 != ARG_RAW)
			w = watched_slot(0, len1);
		if (!w && a->a2 != ARG_NONE)
			w = watched_slot(1, len2);
		/* A relative path whose directory is unknown may be anywhere. */
		pass = w || s1 == PATH_UNRESOLVED || s2 == PATH_UNRESOLVED;
	}
	count(a->op, pass, ret < 0);
	if (!pass || !events_on())
		goto out;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		goto out;
	e->h.kind = EV_FILE_CHANGE;
	e->h.op = a->op;
	e->h.syscall = a->syscall;
	e->h.path_state = s1;
	e->h.path2_state = s2;
	e->h.truncated = t1 | (t2 << 1);
	e->h.path_len = len1;
	e->h.path2_len = len2;
	e->h.pad = 0;
	e->h.ret = ret;
	e->h.dirfd = a->d1;
	e->h.dirfd2 = a->d2;
	e->h.mode = a->mode;
	e->h.uid = a->uid;
	e->h.gid = a->gid;
	e->h.flags = a->flags;
	e->h.watched = w;
	e->h.length = a->length;
	e->h.ts_ns = bpf_ktime_get_boot_ns();
	vigil_fill_proc(&e->h.proc);
	if (len1 > PATH_BUF - 1 || len2 > PATH_BUF - 1)
		goto out;
	put(e, 0, 0, len1);
	put(e, 1, len1 + 1, len2);

	/* Two full paths make 2 * PATH_BUF bytes: one more than a 13-bit mask. */
	__u64 size = len1 + 1 + len2 + 1;
	asm volatile("%[size] &= 16383" : [size] "+r"(size));
	if (size > 2 * PATH_BUF)
		goto out;
	__u64 flags = 0;
	if (wakeup_bytes)
		flags = vigil_ring_flags(&events, wakeup_bytes);
	if (bpf_ringbuf_output(&events, e, offsetof(struct fc_event, buf) + size, flags))
		count_drop();
out:
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

/* Keep the record types in BTF so bpf2go emits matching Go structs. */
const struct fc_head *unused_fc_head __attribute__((unused));
const struct fc_event *unused_fc_event __attribute__((unused));
const struct vigil_proc *unused_vigil_proc __attribute__((unused));
