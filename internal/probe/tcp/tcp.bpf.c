//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * TCP connection lifecycle, RTT, retransmits, resets and interface/cgroup
 * traffic, from tracepoints only (no kprobe, no fentry).
 *
 * Every tracepoint program exists in up to three variants that user space
 * tries in order: tp_btf, raw_tp (both read the tracepoint's prototype
 * arguments, which have been stable since the tracepoints were added), and a
 * classic tracepoint reading a local struct that declares only the stable
 * prefix of the trace record (never trace_event_raw_* from vmlinux.h, whose
 * names and layouts changed across kernels). All socket fields are read with
 * CO-RE from the struct sock / struct tcp_sock the tracepoint hands over.
 */
#include "vigil.h"
#include "vigil_sock.h"
#include "vigil_ring.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* TCP states as in include/net/tcp_states.h (stable ABI, also in /proc). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

enum {
	EV_CONNECT = 1,
	EV_CONNECT_FAILED = 2,
	EV_ACCEPT = 3,
	EV_CLOSE = 4,
};

/* Flags in sock_info.flags and tcp_event.flags. */
#define F_ACTIVE 1	 /* we saw connect() start it */
#define F_PASSIVE 2	 /* completed a handshake on a listener */
#define F_ACCEPTED 4	 /* accept() returned it: owner is the acceptor */
#define F_ESTABLISHED 8	 /* reached ESTABLISHED */
#define F_FROM_LISTENER 16 /* owner is the listening socket's owner */
#define F_IN_CONNECT 32	   /* a connect() syscall is still running for it */
#define F_FAIL_PENDING 64  /* handshake failed; the errno comes with connect()'s return */

/*
 * bytes_acked and bytes_received advance with the sequence space, which
 * also holds the SYN (acknowledged, for active opens) and FINs. These bits
 * let user space report payload bytes only.
 */
#define CTL_SYN_ACKED 1
#define CTL_FIN_ACKED 2
#define CTL_FIN_RECEIVED 4
#define RCV_SHUTDOWN 1
#define SEND_SHUTDOWN 2

/* Kernel-side counters (index into the per-CPU "counters" array). */
enum {
	C_SOCK_INSERT = 0,
	C_SOCK_DELETE,
	C_SOCK_INSERT_FAIL,
	C_ACTIVE_ESTABLISHED,
	C_PASSIVE_ESTABLISHED,
	C_ESTABLISHED_CLOSED,
	C_UNTRACKED_CLOSE,
	C_LISTEN_INSERT,
	C_LISTEN_DELETE,
	C_AGG_INSERT,
	C_AGG_INSERT_FAIL,
	C_RTT_SAMPLES,
	C_RTT_SKIPPED, /* unused: skipped = runs - recorded */
	C_IF_INSERT_FAIL,
	C_CG_INSERT_FAIL,
	C_MAX,
};

#define RTT_SLOTS 27 /* log2(µs) buckets: [0,2µs) .. [2^26µs, inf) */

/* Knobs set by user space before load. */
volatile const __u32 rtt_sample_every = 1; /* 0 = tcp_probe not used */
volatile const bool track_connections = true;

struct sock_info {
	__u64 start_ns;	 /* connect() start, or handshake completion */
	__u64 est_ns;	 /* reached ESTABLISHED (0 = not yet) */
	struct vigil_proc owner; /* the owning task, when it connected, listened or accepted */
	__u32 flags;
	__u32 pad0;
	/* Live counters, refreshed by sampled tcp_probe hits and retransmits;
	 * bytes are payload (SYN and FIN excluded). */
	__u64 bytes_acked;
	__u64 bytes_received;
	__u64 updated_ns;
	__u32 srtt_us;
	__u32 retrans;
	/* Endpoints, filled when the connection is established. */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 pad;
	__s32 last_err; /* last error reported on the socket (inet_sk_error_report) */
	__u32 pad2;
};

struct tcp_event {
	__u8 kind;
	__u8 family;
	__u8 state; /* state the socket left (close) */
	__u8 ctl;   /* CTL_* : which SYN/FIN sequence numbers the counters include */
	__u32 flags;
	__s32 err; /* errno of a failed connect (sk_err), 0 otherwise */
	__u64 ts_ns;
	__u64 start_ns;
	__u64 est_ns;
	__u64 sk;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 netns;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u64 bytes_sent;
	__u64 bytes_retrans;
	__u32 segs_in;
	__u32 segs_out;
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 mdev_us;
	__u32 pad1;
	struct vigil_proc proc; /* the socket's owner (zero when unknown) */
};

/* Aggregation key for retransmits, resets and RTT: the owner and the peer. */
struct agg_key {
	__u64 cgroup_id;
	char comm[TASK_COMM_LEN];
	__u8 raddr[16];
	__u16 family;
	__u16 pad[3];
};

struct agg_val {
	__u64 retrans;
	__u64 resets_sent;
	__u64 resets_received;
	__u64 rtt_count;
	__u64 rtt_sum_us;
	__u64 bytes_sent;     /* payload acknowledged by the peer */
	__u64 bytes_received; /* payload received */
	__u64 rtt_slots[RTT_SLOTS];
};

struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 family;
};

struct if_key {
	__u32 netns;
	__u32 ifindex;
};

struct if_val {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
	char name[16];
};

struct cg_val {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
};

VIGIL_EVENTS_RINGBUF(1 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct sock_info);
} listeners SEC(".maps");

/* Threads inside connect() (key: tid) and the socket it started (0 until SYN_SENT). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} connecting SEC(".maps");

/* getsockopt(SOL_SOCKET, SO_ERROR) calls in flight (key: tid). */
struct sockopt_call {
	__u64 optval;
	__s64 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct sockopt_call);
} sockopt_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct agg_key);
	__type(value, struct agg_val);
} agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct if_key);
	__type(value, struct if_val);
} ifstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct cg_val);
} cgstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sample_tick SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &idx);
	if (n)
		(*n)++;
}

static __always_inline __u32 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool is_tcp(const struct sock *sk)
{
	struct sock *s = (struct sock *)sk;
	return BPF_CORE_READ_BITFIELD_PROBED(s, sk_protocol) == IPPROTO_TCP;
}

/* Remote address of a socket (IPv4 in the first four bytes). */
static __always_inline __u16 read_raddr(const struct sock *sk, __u8 *daddr)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family == AF_INET)
		BPF_CORE_READ_INTO((__u32 *)daddr, sk, __sk_common.skc_daddr);
	else if (family == AF_INET6)
		BPF_CORE_READ_INTO((struct in6_addr *)daddr, sk, __sk_common.skc_v6_daddr);
	return family;
}

static __always_inline void fill_tuple(struct sock_info *si, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	si->family = family;
	si->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	si->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)si->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)si->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)si->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)si->daddr, sk, __sk_common.skc_v6_daddr);
	}
}

static __always_inline void fill_owner(struct sock_info *si)
{
	vigil_fill_proc(&si->owner);
}

/* Which SYN/FIN sequence numbers a closing socket's byte counters include. */
static __always_inline __u8 close_ctl(const struct sock *sk, struct sock_info *si)
{
	struct sock *s = (struct sock *)sk;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u8 shut = BPF_CORE_READ_BITFIELD_PROBED(s, sk_shutdown), ctl = 0;

	if (si && (si->flags & F_ACTIVE))
		ctl |= CTL_SYN_ACKED;
	if ((shut & SEND_SHUTDOWN) && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
		ctl |= CTL_FIN_ACKED;
	if (shut & RCV_SHUTDOWN)
		ctl |= CTL_FIN_RECEIVED;
	return ctl;
}

static __always_inline void fill_event(struct tcp_event *e, const struct sock *sk, struct sock_info *si, __u8 kind)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	e->kind = kind;
	e->family = family;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->sk = (__u64)sk;
	e->netns = netns_of(sk);
	/* inet_sport survives unhashing at CLOSE; skc_num is zeroed by then. */
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->daddr, sk, __sk_common.skc_v6_daddr);
	}
	if (si) {
		e->flags = si->flags;
		e->start_ns = si->start_ns;
		e->est_ns = si->est_ns;
		e->proc = si->owner;
	}
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	if (bpf_core_field_exists(tp->bytes_sent))
		e->bytes_sent = BPF_CORE_READ(tp, bytes_sent);
	if (bpf_core_field_exists(tp->bytes_retrans))
		e->bytes_retrans = BPF_CORE_READ(tp, bytes_retrans);
	if (kind == EV_CLOSE)
		e->ctl = close_ctl(sk, si);
	e->segs_in = BPF_CORE_READ(tp, segs_in);
	e->segs_out = BPF_CORE_READ(tp, segs_out);
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->mdev_us = BPF_CORE_READ(tp, mdev_us) >> 2;
}

static __always_inline void submit(const struct sock *sk, struct sock_info *si, __u8 kind, __u8 state, __s32 err)
{
	struct tcp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_drop();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_event(e, sk, si, kind);
	e->state = state;
	e->err = err;
	/* Batched under load, immediate after a quiet spell (vigil_ring.h). */
	bpf_ringbuf_submit(e, vigil_ring_flags(&events, bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 8));
}

static __always_inline void insert_sock(__u64 key, struct sock_info *si)
{
	if (bpf_map_update_elem(&socks, &key, si, BPF_NOEXIST) == 0)
		count(C_SOCK_INSERT);
	else if (bpf_map_update_elem(&socks, &key, si, BPF_EXIST) != 0)
		count(C_SOCK_INSERT_FAIL);
}

static __always_inline void delete_sock(__u64 key)
{
	if (bpf_map_delete_elem(&socks, &key) == 0)
		count(C_SOCK_DELETE);
}

static __always_inline void account_close(const struct sock *sk, struct sock_info *si);

static __always_inline int handle_set_state(const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct sock_info *si;

	if (!track_connections || !is_tcp(sk))
		return 0;

	/* connect() in the caller's task: remember the owner. */
	if (newstate == TCP_SYN_SENT) {
		struct sock_info n = {};

		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		__u64 *c = bpf_map_lookup_elem(&connecting, &tid);

		fill_owner(&n);
		n.start_ns = bpf_ktime_get_boot_ns();
		n.flags = F_ACTIVE;
		if (c) {
			*c = key;
			n.flags |= F_IN_CONNECT;
		}
		insert_sock(key, &n);
		return 0;
	}

	/* listen(): remember the listener's owner for inbound connections. */
	if (newstate == TCP_LISTEN) {
		struct listen_key lk = {.netns = netns_of(sk), .port = BPF_CORE_READ(sk, __sk_common.skc_num),
					.family = BPF_CORE_READ(sk, __sk_common.skc_family)};
		struct sock_info n = {};

		fill_owner(&n);
		if (bpf_map_update_elem(&listeners, &lk, &n, BPF_ANY) == 0)
			count(C_LISTEN_INSERT);
		return 0;
	}
	if (oldstate == TCP_LISTEN) {
		struct listen_key lk = {.netns = netns_of(sk), .port = BPF_CORE_READ(sk, __sk_common.skc_num),
					.family = BPF_CORE_READ(sk, __sk_common.skc_family)};

		if (bpf_map_delete_elem(&listeners, &lk) == 0)
			count(C_LISTEN_DELETE);
		return 0;
	}

	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT) {
		si = bpf_map_lookup_elem(&socks, &key);
		if (!si)
			return 0;
		si->est_ns = bpf_ktime_get_boot_ns();
		si->flags |= F_ESTABLISHED;
		fill_tuple(si, sk);
		count(C_ACTIVE_ESTABLISHED);
		submit(sk, si, EV_CONNECT, oldstate, 0);
		return 0;
	}

	/*
	 * Passive open, completed in softirq: no task context. The owner is
	 * the listener's until accept() hands the socket to a task.
	 */
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV) {
		struct listen_key lk = {.netns = netns_of(sk), .port = BPF_CORE_READ(sk, __sk_common.skc_num),
					.family = BPF_CORE_READ(sk, __sk_common.skc_family)};
		struct sock_info n = {}, *owner = bpf_map_lookup_elem(&listeners, &lk);

		if (!owner && lk.family == AF_INET) {
			/* An IPv4 connection to a dual-stack IPv6 listener. */
			lk.family = AF_INET6;
			owner = bpf_map_lookup_elem(&listeners, &lk);
		}
		if (owner) {
			n = *owner;
			n.flags = F_FROM_LISTENER;
		}
		n.start_ns = n.est_ns = bpf_ktime_get_boot_ns();
		n.flags |= F_PASSIVE | F_ESTABLISHED;
		n.bytes_acked = n.bytes_received = n.updated_ns = 0;
		n.srtt_us = n.retrans = 0;
		fill_tuple(&n, sk);
		count(C_PASSIVE_ESTABLISHED);
		insert_sock(key, &n);
		return 0;
	}

	if (newstate != TCP_CLOSE)
		return 0;

	si = bpf_map_lookup_elem(&socks, &key);
	if (!si) {
		if (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV)
			count(C_UNTRACKED_CLOSE);
		return 0;
	}
	if (oldstate == TCP_SYN_SENT) {
		/*
		 * The handshake failed. The kernel stores the error in sk_err
		 * (ECONNREFUSED on RST, ETIMEDOUT after SYN retries, the ICMP
		 * error for unreachables) before it moves the socket to CLOSE.
		 * An ICMP error that arrived while the socket was locked by its
		 * owner is kept in sk_err_soft instead. 0 in both means the
		 * application closed the socket first.
		 */
		int err = BPF_CORE_READ(sk, sk_err);

		if (!err)
			err = BPF_CORE_READ(sk, sk_err_soft);
		if (!err)
			err = si->last_err;
		if (!err && (si->flags & F_IN_CONNECT)) {
			/* A blocking connect(): its return value is the errno. */
			si->flags |= F_FAIL_PENDING;
			return 0;
		}
		submit(sk, si, EV_CONNECT_FAILED, oldstate, err);
	} else if (si->flags & F_ESTABLISHED) {
		count(C_ESTABLISHED_CLOSED);
		submit(sk, si, EV_CLOSE, oldstate, 0);
		account_close(sk, si);
	}
	delete_sock(key);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_btf_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return handle_set_state(sk, oldstate, newstate);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_tp_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return handle_set_state(sk, oldstate, newstate);
}

/* Stable prefix of the sock:inet_sock_set_state record (Linux 4.16+). */
struct set_state_ctx {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
};

SEC("tracepoint/sock/inet_sock_set_state")
int tp_set_state(struct set_state_ctx *ctx)
{
	return handle_set_state(ctx->skaddr, ctx->oldstate, ctx->newstate);
}

/*
 * An error reported to the socket's owner (sk_error_report). The owner may
 * read and clear sk_err (SO_ERROR) before closing a socket whose connect
 * failed, so the error is remembered here for the failed-connect record.
 */
static __always_inline int handle_error_report(const struct sock *sk)
{
	struct sock_info *si;
	__u64 key = (__u64)sk;
	int err;

	if (!track_connections || !is_tcp(sk))
		return 0;
	si = bpf_map_lookup_elem(&socks, &key);
	if (!si)
		return 0;
	err = BPF_CORE_READ(sk, sk_err);
	if (err)
		si->last_err = err;
	return 0;
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(tp_btf_error_report, const struct sock *sk)
{
	return handle_error_report(sk);
}

SEC("raw_tp/inet_sk_error_report")
int BPF_PROG(raw_tp_error_report, const struct sock *sk)
{
	return handle_error_report(sk);
}

/* --- accept(): hand the socket to the accepting task. --- */

/* The socket behind a file descriptor of the current task (vigil_sock.h). */
static __always_inline struct sock *fd_to_sk(__s64 fd)
{
	return file_sk(fd_file(fd));
}

SEC("tracepoint/syscalls/sys_enter_connect")
int tp_enter_connect(struct syscall_enter_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 zero = 0;

	if (track_connections)
		bpf_map_update_elem(&connecting, &tid, &zero, BPF_ANY);
	return 0;
}

#define EINPROGRESS 115

SEC("tracepoint/syscalls/sys_exit_connect")
int tp_exit_connect(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *c = bpf_map_lookup_elem(&connecting, &tid), key;
	struct sock_info *si;

	if (!c)
		return 0;
	key = *c;
	bpf_map_delete_elem(&connecting, &tid);
	if (!key)
		return 0;
	si = bpf_map_lookup_elem(&socks, &key);
	if (!si)
		return 0;
	si->flags &= ~F_IN_CONNECT;
	if (ctx->ret < 0 && ctx->ret != -EINPROGRESS)
		si->last_err = -ctx->ret;
	if (si->flags & F_FAIL_PENDING) {
		submit((const struct sock *)key, si, EV_CONNECT_FAILED, TCP_SYN_SENT, si->last_err);
		delete_sock(key);
	}
	return 0;
}

#define SOL_SOCKET 1
#define SO_ERROR 4

SEC("tracepoint/syscalls/sys_enter_getsockopt")
int tp_enter_getsockopt(struct syscall_enter_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sockopt_call call = {.fd = ctx->args[0], .optval = ctx->args[3]};

	if (!track_connections || ctx->args[1] != SOL_SOCKET || ctx->args[2] != SO_ERROR)
		return 0;
	bpf_map_update_elem(&sockopt_calls, &tid, &call, BPF_ANY);
	return 0;
}

/* A non-blocking connect's error reaches the owner through SO_ERROR, which
 * clears sk_err: remember it for the failed-connect record. */
SEC("tracepoint/syscalls/sys_exit_getsockopt")
int tp_exit_getsockopt(struct syscall_exit_ctx *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sockopt_call *call = bpf_map_lookup_elem(&sockopt_calls, &tid);
	struct sock_info *si;
	int val = 0;
	__u64 key;

	if (!call)
		return 0;
	if (ctx->ret == 0 && !bpf_probe_read_user(&val, sizeof(val), (void *)call->optval) && val > 0) {
		key = (__u64)fd_to_sk(call->fd);
		si = bpf_map_lookup_elem(&socks, &key);
		if (si)
			si->last_err = val;
	}
	bpf_map_delete_elem(&sockopt_calls, &tid);
	return 0;
}

static __always_inline int handle_accept_exit(struct syscall_exit_ctx *ctx)
{
	struct sock_info *si;
	struct sock *sk;
	__u64 key;

	if (!track_connections)
		return 0;
	sk = fd_to_sk(ctx->ret);
	if (!sk)
		return 0;
	key = (__u64)sk;
	si = bpf_map_lookup_elem(&socks, &key);
	if (!si || !(si->flags & F_PASSIVE) || (si->flags & F_ACCEPTED))
		return 0;
	fill_owner(si);
	si->flags = (si->flags & ~F_FROM_LISTENER) | F_ACCEPTED;
	submit(sk, si, EV_ACCEPT, 0, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct syscall_exit_ctx *ctx)
{
	return handle_accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct syscall_exit_ctx *ctx)
{
	return handle_accept_exit(ctx);
}

/* --- Aggregates: retransmits, resets, RTT, keyed by owner and peer. --- */

static __always_inline struct agg_val *agg_for(const struct sock *sk, struct sock_info *si)
{
	struct agg_key k = {};
	struct agg_val *v;

	if (sk) {
		k.family = read_raddr(sk, k.raddr);
		if (si) {
			k.cgroup_id = si->owner.cgroup_id;
			__builtin_memcpy(k.comm, si->owner.comm, sizeof(k.comm));
		}
	}
	v = bpf_map_lookup_elem(&agg, &k);
	if (v)
		return v;
	{
		struct agg_val zero = {};

		if (bpf_map_update_elem(&agg, &k, &zero, BPF_NOEXIST) == 0)
			count(C_AGG_INSERT);
		else
			count(C_AGG_INSERT_FAIL);
	}
	return bpf_map_lookup_elem(&agg, &k);
}

/*
 * Per-owner TCP bytes: the sampled tcp_probe hits add each socket's payload
 * progress since its previous sample; the close adds the rest, so the sum
 * over a connection's life is its exact payload.
 */
static __always_inline void account_bytes(struct agg_val *v, struct sock_info *si, __u64 sent, __u64 received)
{
	if (sent > si->bytes_acked)
		v->bytes_sent += sent - si->bytes_acked;
	if (received > si->bytes_received)
		v->bytes_received += received - si->bytes_received;
	si->bytes_acked = sent;
	si->bytes_received = received;
}

static __always_inline void account_close(const struct sock *sk, struct sock_info *si)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 sent = BPF_CORE_READ(tp, bytes_acked), received = BPF_CORE_READ(tp, bytes_received);
	__u8 ctl = close_ctl(sk, si);
	struct agg_val *v;

	if ((ctl & CTL_SYN_ACKED) && sent)
		sent--;
	if ((ctl & CTL_FIN_ACKED) && sent)
		sent--;
	if ((ctl & CTL_FIN_RECEIVED) && received)
		received--;
	v = agg_for(sk, si);
	if (v)
		account_bytes(v, si, sent, received);
}

static __always_inline struct sock_info *owner_of(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (!sk)
		return NULL;
	return bpf_map_lookup_elem(&socks, &key);
}

/*
 * Counts segments, not skbs, like the kernel's TcpRetransSegs and
 * tcp_sock.total_retrans: a GSO skb retransmitted at once is several.
 */
static __always_inline int handle_retransmit(const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_info *si = owner_of(sk);
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)((struct sk_buff *)skb)->cb;
	__u32 segs = 1;
	struct agg_val *v;

	if (skb) {
		segs = BPF_CORE_READ(cb, tcp_gso_segs);
		if (!segs)
			segs = 1;
	}
	if (si)
		si->retrans += segs;
	v = agg_for(sk, si);
	if (v)
		v->retrans += segs;
	return 0;
}

/* Since Linux 6.12 the tracepoint also fires for failed attempts (err != 0),
 * which the kernel's counters do not count. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_btf_retransmit_err, const struct sock *sk, const struct sk_buff *skb, int err)
{
	return err ? 0 : handle_retransmit(sk, skb);
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(raw_tp_retransmit_err, const struct sock *sk, const struct sk_buff *skb, int err)
{
	return err ? 0 : handle_retransmit(sk, skb);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_btf_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	return handle_retransmit(sk, skb);
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(raw_tp_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	return handle_retransmit(sk, skb);
}

/* Stable prefix of tcp:tcp_retransmit_skb and tcp:tcp_send_reset (4.15+). */
struct skb_sk_ctx {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
};

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tp_retransmit(struct skb_sk_ctx *ctx)
{
	return handle_retransmit(ctx->skaddr, ctx->skbaddr);
}

static __always_inline int handle_reset(const struct sock *sk, bool sent)
{
	struct sock_info *si = NULL;
	struct agg_val *v;

	/* A reset answering a segment for no socket has no sk. */
	if (sk && BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_LISTEN)
		si = owner_of(sk);
	v = agg_for(sk, si);
	if (!v)
		return 0;
	if (sent)
		v->resets_sent++;
	else
		v->resets_received++;
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tp_btf_send_reset, const struct sock *sk)
{
	return handle_reset(sk, true);
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(raw_tp_send_reset, const struct sock *sk)
{
	return handle_reset(sk, true);
}

SEC("tracepoint/tcp/tcp_send_reset")
int tp_send_reset(struct skb_sk_ctx *ctx)
{
	return handle_reset(ctx->skaddr, true);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tp_btf_receive_reset, const struct sock *sk)
{
	return handle_reset(sk, false);
}

SEC("raw_tp/tcp_receive_reset")
int BPF_PROG(raw_tp_receive_reset, const struct sock *sk)
{
	return handle_reset(sk, false);
}

/* Stable prefix of tcp:tcp_receive_reset (4.15+). */
struct sk_ctx {
	__u64 common;
	const void *skaddr;
};

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_receive_reset(struct sk_ctx *ctx)
{
	return handle_reset(ctx->skaddr, false);
}

static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static __always_inline bool sample_skip(void)
{
	__u32 zero = 0;
	__u64 *tick;

	if (rtt_sample_every <= 1)
		return false;
	tick = bpf_map_lookup_elem(&sample_tick, &zero);
	return !tick || ++(*tick) % rtt_sample_every;
}

/*
 * tcp_probe fires for every segment an established socket receives. One in
 * rtt_sample_every hits (per CPU) records the smoothed RTT into the owner's
 * histogram and refreshes the socket's live counters for `vigil top tcp`.
 */
static __always_inline int handle_probe(const struct sock *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct sock_info *si;
	struct agg_val *v;
	__u32 srtt, slot;

	if (sample_skip())
		return 0;
	srtt = BPF_CORE_READ(tp, srtt_us) >> 3;
	if (!srtt)
		return 0;
	count(C_RTT_SAMPLES);
	si = owner_of(sk);
	v = agg_for(sk, si);
	if (si) {
		/* In ESTABLISHED an active socket's bytes_acked includes its SYN. */
		__u64 sent = BPF_CORE_READ(tp, bytes_acked);

		if ((si->flags & F_ACTIVE) && sent)
			sent--;
		si->srtt_us = srtt;
		si->updated_ns = bpf_ktime_get_boot_ns();
		if (v)
			account_bytes(v, si, sent, BPF_CORE_READ(tp, bytes_received));
	}
	if (!v)
		return 0;
	slot = log2_slot(srtt);
	if (slot >= RTT_SLOTS)
		slot = RTT_SLOTS - 1;
	v->rtt_slots[slot]++;
	v->rtt_count++;
	v->rtt_sum_us += srtt;
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tp_btf_probe, struct sock *sk)
{
	struct tcp_sock *tp;
	struct sock_info *si;
	struct agg_val *v;
	struct agg_key k = {};
	__u64 key = (__u64)sk;
	__u32 srtt, slot;

	if (sample_skip())
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	srtt = tp->srtt_us >> 3;
	if (!srtt)
		return 0;
	count(C_RTT_SAMPLES);
	si = bpf_map_lookup_elem(&socks, &key);
	if (si) {
		k.cgroup_id = si->owner.cgroup_id;
		__builtin_memcpy(k.comm, si->owner.comm, sizeof(k.comm));
	}
	k.family = sk->__sk_common.skc_family;
	if (k.family == AF_INET)
		*(__u32 *)k.raddr = sk->__sk_common.skc_daddr;
	else if (k.family == AF_INET6)
		bpf_probe_read_kernel(k.raddr, sizeof(k.raddr), &sk->__sk_common.skc_v6_daddr);
	v = bpf_map_lookup_elem(&agg, &k);
	if (!v) {
		struct agg_val zero = {};

		if (bpf_map_update_elem(&agg, &k, &zero, BPF_NOEXIST) == 0)
			count(C_AGG_INSERT);
		else
			count(C_AGG_INSERT_FAIL);
		v = bpf_map_lookup_elem(&agg, &k);
		if (!v)
			return 0;
	}
	if (si) {
		__u64 sent = tp->bytes_acked;

		if ((si->flags & F_ACTIVE) && sent)
			sent--;
		si->srtt_us = srtt;
		si->updated_ns = bpf_ktime_get_boot_ns();
		account_bytes(v, si, sent, tp->bytes_received);
	}
	slot = log2_slot(srtt);
	if (slot >= RTT_SLOTS)
		slot = RTT_SLOTS - 1;
	v->rtt_slots[slot]++;
	v->rtt_count++;
	v->rtt_sum_us += srtt;
	return 0;
}

SEC("raw_tp/tcp_probe")
int BPF_PROG(raw_tp_probe, struct sock *sk)
{
	return handle_probe(sk);
}

/* --- Traffic per interface (net tracepoints) and per cgroup (cgroup_skb). --- */

/* Interface entry; the name is read once, when the entry is created. */
static __always_inline struct if_val *if_entry(struct net_device *dev, struct if_key k)
{
	struct if_val *v = bpf_map_lookup_elem(&ifstats, &k);
	if (v)
		return v;
	{
		struct if_val n = {};

		BPF_CORE_READ_STR_INTO(&n.name, dev, name);
		if (bpf_map_update_elem(&ifstats, &k, &n, BPF_NOEXIST))
			count(C_IF_INSERT_FAIL);
	}
	return bpf_map_lookup_elem(&ifstats, &k);
}

static __always_inline struct if_val *if_for(struct net_device *dev)
{
	struct if_key k = {};

	k.ifindex = BPF_CORE_READ(dev, ifindex);
	k.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	return if_entry(dev, k);
}

static __always_inline int handle_xmit(struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	struct if_val *v;

	if (rc != 0 || !dev)
		return 0;
	v = if_for(dev);
	if (v) {
		v->tx_bytes += len;
		v->tx_packets++;
	}
	return 0;
}

/*
 * The per-packet programs come in two bodies: tp_btf reads kernel memory
 * with direct (BTF-checked) loads, raw_tp through bpf_probe_read_kernel,
 * which costs a helper call per field.
 */
SEC("tp_btf/net_dev_xmit")
int BPF_PROG(tp_btf_xmit, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	struct if_key k = {};
	struct if_val *v;

	if (rc != 0 || !dev)
		return 0;
	k.ifindex = dev->ifindex;
	k.netns = dev->nd_net.net->ns.inum;
	v = if_entry(dev, k);
	if (v) {
		v->tx_bytes += len;
		v->tx_packets++;
	}
	return 0;
}

SEC("raw_tp/net_dev_xmit")
int BPF_PROG(raw_tp_xmit, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	return handle_xmit(skb, rc, dev, len);
}

static __always_inline int handle_receive(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct if_val *v;

	if (!dev)
		return 0;
	v = if_for(dev);
	if (v) {
		/* Count the link-layer header the driver already pulled, as the
		 * interface statistics do. */
		__u32 len = BPF_CORE_READ(skb, len);
		__u16 mac = BPF_CORE_READ(skb, mac_header);
		unsigned char *head = BPF_CORE_READ(skb, head), *data = BPF_CORE_READ(skb, data);

		if (mac != (__u16)~0U && data >= head + mac && data - (head + mac) < 256)
			len += data - (head + mac);
		v->rx_bytes += len;
		v->rx_packets++;
	}
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_btf_receive, struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	struct if_key k = {};
	struct if_val *v;
	unsigned char *head, *data;
	__u32 len;
	__u16 mac;

	if (!dev)
		return 0;
	k.ifindex = dev->ifindex;
	k.netns = dev->nd_net.net->ns.inum;
	v = if_entry(dev, k);
	if (!v)
		return 0;
	len = skb->len;
	mac = skb->mac_header;
	head = skb->head;
	data = skb->data;
	if (mac != (__u16)~0U && data >= head + mac && data - (head + mac) < 256)
		len += data - (head + mac);
	v->rx_bytes += len;
	v->rx_packets++;
	return 0;
}

SEC("raw_tp/netif_receive_skb")
int BPF_PROG(raw_tp_receive, struct sk_buff *skb)
{
	return handle_receive(skb);
}

static __always_inline int count_cgroup(struct __sk_buff *skb, bool egress)
{
	__u64 id = bpf_skb_cgroup_id(skb);
	struct cg_val *v = bpf_map_lookup_elem(&cgstats, &id);

	if (!v) {
		struct cg_val zero = {};

		if (bpf_map_update_elem(&cgstats, &id, &zero, BPF_NOEXIST))
			count(C_CG_INSERT_FAIL);
		v = bpf_map_lookup_elem(&cgstats, &id);
		if (!v)
			return 1;
	}
	if (egress) {
		v->tx_bytes += skb->len;
		v->tx_packets++;
	} else {
		v->rx_bytes += skb->len;
		v->rx_packets++;
	}
	return 1; /* always let the packet through */
}

SEC("cgroup_skb/ingress")
int cgroup_ingress(struct __sk_buff *skb)
{
	return count_cgroup(skb, false);
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
	return count_cgroup(skb, true);
}

/* Keep the record types in BTF so bpf2go emits matching Go structs. */
const struct vigil_proc *unused_vigil_proc __attribute__((unused));
const struct tcp_event *unused_tcp_event __attribute__((unused));
const struct sock_info *unused_sock_info __attribute__((unused));
const struct agg_key *unused_agg_key __attribute__((unused));
const struct agg_val *unused_agg_val __attribute__((unused));
const struct if_key *unused_if_key __attribute__((unused));
const struct if_val *unused_if_val __attribute__((unused));
const struct cg_val *unused_cg_val __attribute__((unused));
