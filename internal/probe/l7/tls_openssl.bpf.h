/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * TLS plaintext from OpenSSL and BoringSSL (included at the end of
 * l7.bpf.c).
 *
 * Uprobes at the entry of SSL_read, SSL_read_ex, SSL_write and SSL_write_ex
 * save the call (SSL pointer, buffer, and for _ex the size_t * the length
 * comes back in) in the thread's task storage; a uretprobe at their return
 * copies the plaintext the call moved with emit_record. These are C
 * libraries: uretprobes are safe there (never on Go binaries).
 *
 * The SSL object does not say which fd it works on in a way stable across
 * library versions, so the fd comes from the data syscall the library makes
 * on this thread during the call (tls_syscall_fd, from data_enter). A call
 * served from the library's own buffer makes no syscall: an LRU map
 * (tgid, SSL pointer) -> fd remembers the fd of the last call that made one.
 * Calls whose fd is unknown or not in the connection table emit nothing and
 * are counted.
 */

/* Counters (index into "tls_counters"). */
enum {
	TC_RECORDS = 0,	  /* plaintext records emitted */
	TC_UNKNOWN_CONN,  /* calls that moved bytes on no learnt connection */
	TC_STATE_FULL,	  /* no task storage for the call (out of memory) */
	TC_MAX,
};

/* The TLS library call in flight on a thread. */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 size_ptr; /* _ex: where the library writes the byte count */
	__u32 fd;	/* the first learnt socket the call read or wrote */
	__u32 depth;	/* calls nested on the same SSL object (a library
			 * wrapper calling another exported function) */
	__u8 active;
	__u8 dir;
	__u8 ex;
	__u8 have_fd;
	__u8 pad[4];
};

struct ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/* LRU: SSL_free removes entries (ssl_free_enter), but a process that
 * exits frees nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ssl_key);
	__type(value, __u32); /* fd */
} ssl_fds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_counters SEC(".maps");

static __always_inline void tls_count(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&tls_counters, &idx);
	if (n)
		(*n)++;
}

/* tls_syscall_fd: a data syscall on the learnt connection (fd, ci) starts;
 * when the thread is inside a TLS library call, that call works on fd, and
 * the connection's syscall bytes are ciphertext from now on. */
static __always_inline void tls_syscall_fd(__u32 fd, struct conn_info *ci)
{
	struct ssl_call *sc = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);

	if (!sc || !sc->active)
		return;
	if (!sc->have_fd) {
		sc->fd = fd;
		sc->have_fd = 1;
	}
	if (sc->fd == fd)
		ci->flags |= F_TLS;
}

static __always_inline int ssl_enter(struct pt_regs *ctx, __u8 dir, __u8 ex)
{
	__u64 ssl = PT_REGS_PARM1(ctx);
	struct ssl_call *sc;

	if (!wanted_process(current_pid()))
		return 0;
	sc = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!sc) {
		tls_count(TC_STATE_FULL);
		return 0;
	}
	if (sc->active && sc->ssl == ssl) {
		sc->depth++;
		return 0;
	}
	/* Anything still active here is a call that never returned (a
	 * longjmp out of a callback): start over. */
	sc->ssl = ssl;
	sc->buf = PT_REGS_PARM2(ctx);
	sc->size_ptr = ex ? PT_REGS_PARM4(ctx) : 0;
	sc->fd = 0;
	sc->depth = 0;
	sc->dir = dir;
	sc->ex = ex;
	sc->have_fd = 0;
	sc->active = 1;
	return 0;
}

/* int SSL_read(SSL *, void *buf, int num), int SSL_write(SSL *, const void *buf, int num) */
SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, DIR_READ, 0);
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, DIR_WRITE, 0);
}

/* int SSL_read_ex(SSL *, void *buf, size_t num, size_t *readbytes), and
 * SSL_write_ex alike with size_t *written: 1 on success. */
SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, DIR_READ, 1);
}

SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, DIR_WRITE, 1);
}

/* void SSL_free(SSL *): the object's address may be reused by a new SSL
 * on another fd; forget its last fd. */
SEC("uprobe")
int ssl_free_enter(struct pt_regs *ctx)
{
	struct ssl_key k = {.ssl = PT_REGS_PARM1(ctx), .tgid = current_pid()};

	bpf_map_delete_elem(&ssl_fds, &k);
	return 0;
}

/* The return of all four. */
SEC("uretprobe")
int ssl_ret(struct pt_regs *ctx)
{
	struct ssl_call *sc, s;
	struct ssl_key k = {};
	struct conn_key key;
	struct conn_info *ci;
	struct call c = {};
	__s64 n;

	sc = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);
	if (!sc || !sc->active)
		return 0;
	if (sc->depth) {
		sc->depth--;
		return 0;
	}
	s = *sc;
	sc->active = 0;

	k.ssl = s.ssl;
	k.tgid = current_pid();
	if (s.have_fd) {
		bpf_map_update_elem(&ssl_fds, &k, &s.fd, BPF_ANY);
	}

	n = (int)PT_REGS_RC(ctx);
	if (s.ex) {
		__u64 got = 0;

		if (n != 1 || bpf_probe_read_user(&got, sizeof(got), (void *)s.size_ptr))
			return 0;
		n = got;
	}
	if (n <= 0)
		return 0;

	if (!s.have_fd) {
		/* Served from the library's buffer: the fd of this SSL's last
		 * call that made a syscall. */
		__u32 *fdp = bpf_map_lookup_elem(&ssl_fds, &k);

		if (!fdp) {
			tls_count(TC_UNKNOWN_CONN);
			return 0;
		}
		s.fd = *fdp;
	}
	key.tgid = k.tgid;
	key.fd = s.fd;
	ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci) {
		tls_count(TC_UNKNOWN_CONN);
		return 0;
	}
	if (!s.have_fd) {
		/* No syscall checked the fd during this call (data_exit does):
		 * it must still hold the learnt socket. */
		__u64 f = (__u64)fd_file(s.fd);

		if (!ci->file && tcp_sk((struct file *)f))
			ci->file = f;
		if (f != ci->file) {
			tls_count(TC_UNKNOWN_CONN);
			return 0;
		}
	}
	ci->flags |= F_TLS;
	c.buf = s.buf;
	c.generation = ci->generation;
	c.fd = s.fd;
	c.dir = s.dir;
	c.buf_kind = BUF_PLAIN;
	c.syscall = s.dir == DIR_READ ? SC_TLS_OPENSSL_READ : SC_TLS_OPENSSL_WRITE;
	emit_record(&c, ci, n, F_TLS);
	tls_count(TC_RECORDS);
	return 0;
}
