//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Plaintext connection data from the syscall tracepoints only (no kprobe).
 *
 * connect() and accept()/accept4() returns teach the probe which fds are
 * TCP sockets (the socket is found through task->files, vigil_sock.h);
 * close() forgets them. The data syscalls save their fd and buffer
 * at sys_enter by thread, and at sys_exit copy a bounded prefix of the
 * bytes really transferred (the return value) into one ring record.
 *
 * A connection is keyed by (tgid, fd) and carries a generation drawn from a
 * global counter when it is learnt, so a reused fd number never continues
 * an older connection's stream; the fd's file is checked again at the exit
 * of each data syscall that transferred bytes, so an fd replaced behind the
 * probe's back (dup2 over it, closed by exec) captures nothing.
 */
#include "vigil.h"
#include "vigil_sock.h"
#include "vigil_ring.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define EINPROGRESS 115
#define MSG_PEEK 2

#define MAX_CAPTURE 4096 /* upper bound of max_capture_bytes */
#define MAX_IOV 16	 /* iovec entries copied from per call */
#define MAX_MMSG 4	 /* messages of a recvmmsg/sendmmsg captured, one record each */

enum { DIR_READ = 1, DIR_WRITE = 2 };
enum { ROLE_CLIENT = 1, ROLE_SERVER = 2 };
enum { BUF_PLAIN = 0, BUF_IOV = 1, BUF_MSG = 2, BUF_MMSG = 3 };
/* The call that moved the bytes. SC_TLS_* are TLS library calls (uprobes),
 * whose records carry plaintext and F_TLS. */
enum {
	SC_READ = 1, SC_READV, SC_RECVFROM, SC_RECVMSG, SC_WRITE, SC_WRITEV, SC_SENDTO, SC_SENDMSG,
	SC_RECVMMSG, SC_SENDMMSG,
	SC_TLS_OPENSSL_READ = 16, SC_TLS_OPENSSL_WRITE, SC_TLS_GO_READ, SC_TLS_GO_WRITE,
};
#define F_TRUNCATED 1
#define F_SEEDED 2 /* conn_info and record: open before the probe started, seeded by user space */
/* record: plaintext from a TLS library; conn_info: a TLS library was seen
 * on the connection, so its syscall bytes (ciphertext) are not streamed. */
#define F_TLS 4

/* Counters (index into the per-CPU "counters" array). */
enum {
	C_CONN_INSERT = 0, /* connections learnt */
	C_CONN_CLOSE,	   /* connections forgotten at close() */
	C_CONN_REPLACED,   /* learnt over a live entry (fd reused unseen) */
	C_STALE_FD,	   /* fd no longer the learnt socket */
	C_CALLS_FULL,	   /* no task storage for the call in flight (out of memory) */
	C_TRUNCATED,	   /* records with fewer bytes than transferred */
	C_MMSG_SKIPPED,	   /* messages of a recvmmsg/sendmmsg past MAX_MMSG, not captured */
	C_MAX,
};

/* Knobs set by user space before load. */
volatile const __u32 max_capture_bytes = 256;
volatile const bool filter_pids = false;
volatile const __u32 self_tgid = 0;

__u64 next_generation = 0;

struct conn_key {
	__u32 tgid;
	__u32 fd;
};

struct conn_info {
	__u64 generation;
	__u64 file; /* the struct file learnt: a data call on another is not ours */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 role;
	__u8 flags; /* F_SEEDED */
};

/* A data syscall between enter and exit. */
struct call {
	__u64 buf; /* buffer, iovec array, user_msghdr or mmsghdr array */
	__u64 generation;
	__u32 fd;
	__u32 iovcnt; /* iovec entries (BUF_IOV), messages (BUF_MMSG) */
	__u8 dir;
	__u8 buf_kind;
	__u8 syscall;
	__u8 pad[5];
};

/* Pending connect/accept: the fd connect() was called with. */
struct pending_connect {
	__u32 fd;
};

/* The fixed part of every record; up to max_capture_bytes of data follow. */
struct conn_data {
	struct vigil_proc proc;
	__u64 ts_ns;
	__u64 generation;
	__u32 fd;
	__u32 len;	/* bytes the syscall transferred */
	__u32 captured; /* bytes that follow */
	__u8 dir;
	__u8 role;
	__u8 flags;
	__u8 syscall; /* SC_* */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 pad2;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The scratch record: the header, then room for the largest capture and
 * slack, so the verifier can bound every copy (see size_bound). */
struct scratch {
	struct conn_data hdr;
	__u8 data[3 * MAX_CAPTURE];
};

VIGIL_EVENTS_RINGBUF(4 << 20);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, struct conn_info);
} conns SEC(".maps");

/* The call in flight of each thread, in task storage: no table to fill
 * and no hash update per call. call.fd == 0 with call.dir == 0: none. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call);
} calls SEC(".maps");

/* LRU: a thread that dies inside connect() leaves its entry behind, and a
 * full plain hash would then refuse every later connect silently. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tid */
	__type(value, struct pending_connect);
} connecting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count_n(__u32 idx, __u64 v)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &idx);
	if (n)
		*n += v;
}

static __always_inline void count(__u32 idx)
{
	count_n(idx, 1);
}

/*
 * The data path reads the task through the BTF pointer of
 * bpf_get_current_task_btf: plain loads the verifier checks against the
 * kernel's BTF (a fault reads 0), not one bpf_probe_read_kernel call per
 * field. That halves the cost of a captured call; vigil_fill_proc and fd_file
 * (vigil.h, vigil_sock.h) stay for the rarer paths.
 */

/* fill_proc_btf fills p like vigil_fill_proc, with BTF loads. */
static __always_inline void fill_proc_btf(struct vigil_proc *p)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_struct *parent = task->real_parent;
	struct task_struct *pleader = parent->group_leader;
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	p->pid = id >> 32;
	p->tid = (__u32)id;
	p->ppid = parent->tgid;
	p->uid = (__u32)ug;
	p->gid = ug >> 32;
	p->pad = 0;
	p->start_ns = task->group_leader->start_boottime;
	p->cgroup_id = bpf_get_current_cgroup_id();
	/* comm is NUL-terminated and zero-padded (__set_task_comm). Byte
	 * loads: the verifier refuses wider loads across the array's elements. */
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		p->comm[i] = task->comm[i];
		p->parent_comm[i] = pleader->comm[i];
	}
	p->comm[TASK_COMM_LEN - 1] = 0;
	p->parent_comm[TASK_COMM_LEN - 1] = 0;
}

/* fd_file_btf is fd_file with BTF loads for the table walk: the current
 * task's file at fd as an address, 0 if none. */
static __always_inline __u64 fd_file_btf(__u32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file **fds = fdt->fd;
	__u64 f = 0;

	if (fd >= fdt->max_fds || !fds)
		return 0;
	/* An index into the array is a variable offset: a helper read. */
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* tcp_sk returns f's socket when it is a TCP socket, else NULL. */
static __always_inline struct sock *tcp_sk(struct file *f)
{
	struct sock *sk = file_sk(f);

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return NULL;
	return sk;
}

static __always_inline bool wanted_process(__u32 tgid)
{
	if (self_tgid && tgid == self_tgid)
		return false;
	return !filter_pids || bpf_map_lookup_elem(&pids, &tgid);
}

/* learn records fd as a TCP connection of the current process. */
static __always_inline void learn(int fd, __u8 role)
{
	struct conn_key key = {.tgid = current_pid(), .fd = fd};
	struct conn_info ci = {};
	struct file *f;
	struct sock *sk;
	__u16 family;

	if (!wanted_process(key.tgid))
		return;
	f = fd_file(fd);
	sk = tcp_sk(f);
	if (!sk)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		BPF_CORE_READ_INTO(&ci.saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&ci.daddr, sk, __sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&ci.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ci.daddr, sk, __sk_common.skc_v6_daddr);
	} else {
		return;
	}
	ci.family = family;
	ci.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ci.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	ci.file = (__u64)f;
	ci.role = role;
	ci.generation = __sync_fetch_and_add(&next_generation, 1) + 1;
	if (bpf_map_lookup_elem(&conns, &key))
		count(C_CONN_REPLACED);
	if (!bpf_map_update_elem(&conns, &key, &ci, BPF_ANY))
		count(C_CONN_INSERT);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int tp_enter_connect(struct syscall_enter_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_connect pc = {.fd = ctx->args[0]};

	bpf_map_update_elem(&connecting, &tid, &pc, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int tp_exit_connect(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_connect *pc = bpf_map_lookup_elem(&connecting, &tid);
	int fd;

	if (!pc)
		return 0;
	fd = pc->fd;
	bpf_map_delete_elem(&connecting, &tid);
	if (ctx->ret == 0 || ctx->ret == -EINPROGRESS)
		learn(fd, ROLE_CLIENT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct syscall_exit_ctx *ctx)
{
	if (ctx->ret >= 0)
		learn(ctx->ret, ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct syscall_exit_ctx *ctx)
{
	if (ctx->ret >= 0)
		learn(ctx->ret, ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int tp_enter_close(struct syscall_enter_ctx *ctx)
{
	struct conn_key key = {.tgid = current_pid(), .fd = ctx->args[0]};

	if (!bpf_map_delete_elem(&conns, &key))
		count(C_CONN_CLOSE);
	return 0;
}

/* --- Data syscalls. --- */

static __always_inline void tls_syscall_fd(__u32 fd, struct conn_info *ci); /* tls_openssl.bpf.h */

static __always_inline int data_enter(struct syscall_enter_ctx *ctx, __u8 sc, __u8 dir, __u8 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = id >> 32, .fd = ctx->args[0]};
	struct conn_info *ci;
	struct call *cp;

	ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci)
		return 0;
	/* A peek leaves the bytes queued: the read that consumes them is the
	 * one streamed (nginx peeks at a request's first byte). */
	if (((sc == SC_RECVFROM || sc == SC_RECVMMSG) && (ctx->args[3] & MSG_PEEK)) ||
	    (sc == SC_RECVMSG && (ctx->args[2] & MSG_PEEK)))
		return 0;
	tls_syscall_fd(key.fd, ci);
	cp = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!cp) {
		count(C_CALLS_FULL);
		return 0;
	}
	cp->buf = ctx->args[1];
	cp->iovcnt = kind == BUF_IOV || kind == BUF_MMSG ? ctx->args[2] : 0;
	cp->fd = key.fd;
	cp->generation = ci->generation;
	cp->dir = dir;
	cp->buf_kind = kind;
	cp->syscall = sc;
	return 0;
}

/* size_bound and off_bound mask a copy's size and offset in a way the
 * compiler cannot drop, so the verifier sees every copy inside the scratch
 * buffer: offsets below MAX_CAPTURE, sizes below 2 * MAX_CAPTURE. The real
 * values are already smaller (at most MAX_CAPTURE in all). */
static __always_inline __u64 size_bound(__u64 n)
{
	asm volatile("%[n] &= 0x1fff" : [n] "+r"(n));
	return n;
}

static __always_inline __u64 off_bound(__u64 n)
{
	asm volatile("%[n] &= 0xfff" : [n] "+r"(n));
	return n;
}

struct iov {
	__u64 base;
	__u64 len;
};

/* emit_record copies at most max_capture_bytes of the ret bytes c moved
 * (a buffer, an iovec array or a user_msghdr) into one ring record of
 * connection ci. extra is or-ed into the record's flags (F_TLS). */
static __always_inline void emit_record(struct call *cp, struct conn_info *ci, __s64 ret, __u8 extra)
{
	__u32 zero = 0, want, off = 0;
	struct scratch *s;
	struct call c = *cp;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return;
	/* The header first: the verifier walks the code after the copy loop
	 * once per way out of it, so that code is kept short. */
	fill_proc_btf(&s->hdr.proc);
	s->hdr.ts_ns = bpf_ktime_get_ns();
	s->hdr.generation = c.generation;
	s->hdr.fd = c.fd;
	s->hdr.len = ret > 0xffffffff ? 0xffffffff : ret;
	s->hdr.dir = c.dir;
	s->hdr.role = ci->role;
	s->hdr.syscall = c.syscall;
	s->hdr.family = ci->family;
	s->hdr.sport = ci->sport;
	s->hdr.dport = ci->dport;
	s->hdr.pad2 = 0;
	__builtin_memcpy(s->hdr.saddr, ci->saddr, 16);
	__builtin_memcpy(s->hdr.daddr, ci->daddr, 16);

	want = max_capture_bytes;
	if (want > MAX_CAPTURE)
		want = MAX_CAPTURE;
	if ((__u64)ret < want)
		want = ret;

	if (c.buf_kind == BUF_PLAIN) {
		if (want > 0 && bpf_probe_read_user(s->data, size_bound(want), (void *)c.buf) == 0)
			off = want;
	} else {
		__u64 iov_ptr = c.buf;
		__u32 iovcnt = c.iovcnt;

		if (c.buf_kind == BUF_MSG) {
			struct user_msghdr mh;

			if (bpf_probe_read_user(&mh, sizeof(mh), (void *)c.buf))
				goto out;
			iov_ptr = (__u64)mh.msg_iov;
			iovcnt = mh.msg_iovlen;
		}
		for (int i = 0; i < MAX_IOV; i++) {
			struct iov v;
			__u32 n;

			if (i >= iovcnt || off >= want)
				break;
			if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov_ptr + i * sizeof(v))))
				break;
			n = want - off;
			if (v.len < n)
				n = v.len;
			if (n == 0)
				continue;
			if (bpf_probe_read_user(&s->data[off_bound(off)], size_bound(n), (void *)v.base))
				break;
			off += n;
		}
	}
out:
	if (off > MAX_CAPTURE)
		off = MAX_CAPTURE;
	s->hdr.captured = off;
	s->hdr.flags = (off < ret ? F_TRUNCATED : 0) | (ci->flags & F_SEEDED) | extra;
	if (off < ret)
		count(C_TRUNCATED);
	if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + size_bound(off), vigil_ring_flags_at(&events, 0, s->hdr.ts_ns)))
		count_drop();
}

/* exit_conn ends the thread's call in flight: when it moved bytes (ret > 0)
 * on a connection still tracked under the same fd and file, it copies the
 * call into c and returns the connection, else NULL. */
static __always_inline struct conn_info *exit_conn(struct syscall_exit_ctx *ctx, struct call *c)
{
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32};
	struct conn_info *ci;
	struct call *cp;
	__u64 f;

	cp = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, 0);
	if (!cp || !cp->dir)
		return NULL;
	*c = *cp;
	cp->dir = 0;
	if (ctx->ret <= 0)
		return NULL;
	key.fd = c->fd;
	ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci || ci->generation != c->generation)
		return NULL; /* closed meanwhile by another thread */
	/* close() is not the only way an fd changes: dup2 over it, or exec
	 * closing it (O_CLOEXEC). Check the fd still holds the learnt file,
	 * here rather than at enter, so calls that fail (EAGAIN) skip it. */
	f = fd_file_btf(c->fd);
	/* Seeded from /proc: adopt the file at first use if it is (still) a
	 * TCP socket; the fd may have been closed and reused meanwhile. */
	if (!ci->file && tcp_sk((struct file *)f))
		ci->file = f;
	if (f != ci->file) {
		count(C_STALE_FD);
		bpf_map_delete_elem(&conns, &key);
		return NULL;
	}
	if (ci->flags & F_TLS)
		return NULL; /* ciphertext: the TLS uprobes stream the plaintext */
	return ci;
}

static __always_inline int data_exit(struct syscall_exit_ctx *ctx)
{
	struct conn_info *ci;
	struct call c;

	ci = exit_conn(ctx, &c);
	if (ci)
		emit_record(&c, ci, ctx->ret, 0);
	return 0;
}

/* struct mmsghdr (include/linux/socket.h): a user_msghdr and the bytes
 * that message moved. */
struct mmsghdr_user {
	struct user_msghdr msg_hdr;
	__u32 msg_len;
	__u32 pad;
};

/* mmsg_exit: recvmmsg/sendmmsg return how many messages of the array moved
 * bytes; each message's msg_len holds its length. The first MAX_MMSG
 * become one record each, like a recvmsg/sendmsg; the rest are counted. */
static __always_inline int mmsg_exit(struct syscall_exit_ctx *ctx)
{
	struct conn_info *ci;
	struct call c;
	__u64 vec;
	__s64 n = ctx->ret;

	ci = exit_conn(ctx, &c);
	if (!ci)
		return 0;
	if (n > c.iovcnt)
		n = c.iovcnt; /* the kernel never returns more than vlen */
	vec = c.buf;
	c.buf_kind = BUF_MSG;
	for (int i = 0; i < MAX_MMSG; i++) {
		__u32 len;

		if (i >= n)
			return 0;
		c.buf = vec + i * sizeof(struct mmsghdr_user);
		if (bpf_probe_read_user(&len, sizeof(len), (void *)(c.buf + offsetof(struct mmsghdr_user, msg_len))))
			return 0;
		if (len > 0)
			emit_record(&c, ci, len, 0);
	}
	if (n > MAX_MMSG)
		count_n(C_MMSG_SKIPPED, n - MAX_MMSG);
	return 0;
}

#define DATA_PROGS_EXIT(name, sc, dir, kind, exit)                             \
	SEC("tracepoint/syscalls/sys_enter_" #name)                            \
	int tp_enter_##name(struct syscall_enter_ctx *ctx)                     \
	{                                                                      \
		return data_enter(ctx, sc, dir, kind);                         \
	}                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #name)                             \
	int tp_exit_##name(struct syscall_exit_ctx *ctx)                       \
	{                                                                      \
		return exit(ctx);                                              \
	}
#define DATA_PROGS(name, sc, dir, kind) DATA_PROGS_EXIT(name, sc, dir, kind, data_exit)

DATA_PROGS(read, SC_READ, DIR_READ, BUF_PLAIN)
DATA_PROGS(recvfrom, SC_RECVFROM, DIR_READ, BUF_PLAIN)
DATA_PROGS(readv, SC_READV, DIR_READ, BUF_IOV)
DATA_PROGS(recvmsg, SC_RECVMSG, DIR_READ, BUF_MSG)
DATA_PROGS(write, SC_WRITE, DIR_WRITE, BUF_PLAIN)
DATA_PROGS(sendto, SC_SENDTO, DIR_WRITE, BUF_PLAIN)
DATA_PROGS(writev, SC_WRITEV, DIR_WRITE, BUF_IOV)
DATA_PROGS(sendmsg, SC_SENDMSG, DIR_WRITE, BUF_MSG)
DATA_PROGS_EXIT(recvmmsg, SC_RECVMMSG, DIR_READ, BUF_MMSG, mmsg_exit)
DATA_PROGS_EXIT(sendmmsg, SC_SENDMMSG, DIR_WRITE, BUF_MMSG, mmsg_exit)

#include "tls_go.bpf.h"
#include "tls_openssl.bpf.h"
