/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * TLS plaintext of Go programs: uprobes on crypto/tls.(*Conn).Read and
 * .Write, included at the end of l7.bpf.c.
 *
 * Never a uretprobe: it swaps the return address on the stack, which Go's
 * stack copying and traceback do not expect, and crashes the program. The
 * entry uprobe saves the call's arguments by goroutine (the g pointer is in
 * R14 under the register ABI, Go >= 1.17, and a goroutine may change
 * threads while it waits), and one uprobe on each RET instruction of Read
 * (found by user space disassembling the function) takes the result and
 * emits the plaintext as a record of the connection's stream. Write's
 * plaintext is emitted at its entry (see uprobe_go_tls_entry); Write gets
 * no RET probes.
 *
 * Register ABI: at entry RAX = *tls.Conn, RBX = b's data, RCX = len(b); at
 * RET RAX = n, RBX/RCX = err.
 *
 * The fd: tls.Conn.conn is a net.Conn interface (itab, data); when the itab
 * is the (*net.TCPConn, net.Conn) one, data is a *net.TCPConn whose first
 * word is its *netFD, and netFD.pfd.Sysfd is the fd. The offsets are knobs
 * set by user space (gotls.go: constants checked against DWARF).
 *
 * Attach cookies: bits 56..63 the direction (DIR_READ/DIR_WRITE), the low
 * 56 bits the signed distance from the probed instruction to the itab (so a
 * position-independent load works too: the IP is the probed instruction's
 * run-time address).
 */

volatile const __u32 go_tls_conn_conn_off = 0; /* tls.Conn.conn */
volatile const __u32 go_tcpconn_fd_off = 0;    /* net.TCPConn.conn.fd */
volatile const __u32 go_netfd_sysfd_off = 16;  /* netFD.pfd.Sysfd */

/* Counters of go_tls_counters. */
enum {
	G_NO_ENTRY = 0, /* a Read RET with no saved entry (attached mid-call, or evicted) */
	G_NOT_TCP,	/* tls.Conn.conn is not a *net.TCPConn */
	G_UNKNOWN_FD,	/* the fd is not a connection in conns */
	G_READ_FAULT,	/* Go memory could not be read */
	G_RECORDS,	/* plaintext records emitted */
	G_MAX,
};

struct go_tls_key {
	__u64 g; /* goroutine (runtime.g pointer) */
	__u32 tgid;
	__u32 dir;
};

struct go_tls_call {
	__u64 conn; /* *tls.Conn */
	__u64 buf;  /* b's data, or its distance below the stack top */
	__u8 on_stack;
	__u8 pad[7];
};

/* Calls in flight by goroutine. LRU: a goroutine that never returns (its
 * program exited mid-call) must not keep its entry forever; one evicted
 * while it waits is counted at its RET (G_NO_ENTRY). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_tls_key);
	__type(value, struct go_tls_call);
} go_tls_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, G_MAX);
	__type(key, __u32);
	__type(value, __u64);
} go_tls_counters SEC(".maps");

static __always_inline void go_count(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&go_tls_counters, &idx);
	if (n)
		(*n)++;
}

/* runtime.g begins with its stack bounds {lo, hi} in every Go release. */
struct go_stack {
	__u64 lo, hi;
};

/* go_tls_emit streams n plaintext bytes at buf of the *tls.Conn conn as a
 * record of its connection, when conn is over a *net.TCPConn (its net.Conn
 * itab is itab) whose fd the connection table holds. A function of its own
 * (a BPF-to-BPF call): the entry and the RET programs both use it. */
static __noinline int go_tls_emit(__u64 conn, __u64 itab, __u64 buf, __s64 n, __u32 dir)
{
	struct conn_key ck = {.tgid = current_pid()};
	struct conn_info *ci;
	struct call c = {};
	__u64 iface[2], netfd, f;
	__s64 sysfd;

	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(conn + go_tls_conn_conn_off))) {
		go_count(G_READ_FAULT);
		return 0;
	}
	if (iface[0] != itab) {
		go_count(G_NOT_TCP);
		return 0;
	}
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(iface[1] + go_tcpconn_fd_off)) ||
	    bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + go_netfd_sysfd_off))) {
		go_count(G_READ_FAULT);
		return 0;
	}
	if (sysfd < 0 || sysfd > 0x7fffffff) {
		go_count(G_UNKNOWN_FD);
		return 0;
	}
	ck.fd = sysfd;
	ci = bpf_map_lookup_elem(&conns, &ck);
	if (!ci) {
		go_count(G_UNKNOWN_FD);
		return 0;
	}
	/* As for syscalls: the fd must still hold the learnt socket (a seeded
	 * connection adopts it here). */
	f = (__u64)fd_file(ck.fd);
	if (!ci->file && tcp_sk((struct file *)f))
		ci->file = f;
	if (f != ci->file) {
		count(C_STALE_FD);
		bpf_map_delete_elem(&conns, &ck);
		return 0;
	}
	if (!(ci->flags & F_TLS))
		ci->flags |= F_TLS; /* from now on its syscall bytes are ciphertext only */
	c.buf = buf;
	c.generation = ci->generation;
	c.fd = ck.fd;
	c.dir = dir;
	c.buf_kind = BUF_PLAIN;
	c.syscall = dir == DIR_READ ? SC_TLS_GO_READ : SC_TLS_GO_WRITE;
	emit_record(&c, ci, n, F_TLS);
	go_count(G_RECORDS);
	return 0;
}

/* The itab's run-time address: the probed instruction's plus the cookie's
 * signed 56-bit distance. */
static __always_inline __u64 cookie_itab(struct pt_regs *ctx, __u64 cookie)
{
	return ctx->ip + (((__s64)(cookie << 8)) >> 8);
}

SEC("uprobe")
int uprobe_go_tls_entry(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 tgid = current_pid();
	struct go_tls_key key = {.g = ctx->r14, .tgid = tgid, .dir = cookie >> 56};
	struct go_tls_call call = {.conn = ctx->ax, .buf = ctx->bx};
	struct go_stack st;

	if (!wanted_process(tgid))
		return 0;
	/* Write: the plaintext is all there, and streamed now, before the
	 * ciphertext leaves: a record at the RET could come after the
	 * peer's answer, read meanwhile by another goroutine. */
	if (key.dir == DIR_WRITE) {
		if ((__s64)ctx->cx > 0)
			go_tls_emit(ctx->ax, cookie_itab(ctx, cookie), ctx->bx, ctx->cx, DIR_WRITE);
		return 0;
	}
	/* Read: saved until a RET says how much was read. A buffer on the
	 * goroutine's stack moves when the stack grows inside the call: keep
	 * its distance below the top instead. */
	if (!bpf_probe_read_user(&st, sizeof(st), (void *)key.g) && call.buf >= st.lo && call.buf < st.hi) {
		call.buf = st.hi - call.buf;
		call.on_stack = 1;
	}
	bpf_map_update_elem(&go_tls_calls, &key, &call, BPF_ANY);
	return 0;
}

/* On every RET of crypto/tls.(*Conn).Read. */
SEC("uprobe")
int uprobe_go_tls_ret(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 tgid = current_pid();
	struct go_tls_key key = {.g = ctx->r14, .tgid = tgid, .dir = DIR_READ};
	struct go_tls_call *cp, call;
	__s64 n = ctx->ax;

	cp = bpf_map_lookup_elem(&go_tls_calls, &key);
	if (!cp) {
		if (wanted_process(tgid))
			go_count(G_NO_ENTRY);
		return 0;
	}
	call = *cp;
	bpf_map_delete_elem(&go_tls_calls, &key);
	if (n <= 0)
		return 0;
	if (call.on_stack) {
		struct go_stack st;

		if (bpf_probe_read_user(&st, sizeof(st), (void *)key.g)) {
			go_count(G_READ_FAULT);
			return 0;
		}
		call.buf = st.hi - call.buf;
	}
	go_tls_emit(call.conn, cookie_itab(ctx, cookie), call.buf, n, DIR_READ);
	return 0;
}
