/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* From a file descriptor of the current task to its socket (CO-RE reads). */
#ifndef __VIGIL_SOCK_H
#define __VIGIL_SOCK_H

#include "vigil.h"

/* fd_file returns the current task's open file at fd (NULL if none). */
static __always_inline struct file *fd_file(__s64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds, *f = NULL;

	if (fd < 0 || fd > 1 << 20)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (!fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

/* file_sk returns the socket behind f, or NULL when f is not a socket. */
static __always_inline struct sock *file_sk(struct file *f)
{
	struct socket *sock;

	if (!f)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	/* A socket's file and struct socket point at each other; another
	 * file's private_data does not point back. */
	if (BPF_CORE_READ(sock, file) != f)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

#endif /* __VIGIL_SOCK_H */
