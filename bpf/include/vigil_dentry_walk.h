/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * vigil_dentry_walk.h: the directory components of a (dentry, vfsmount) up
 * to the task's root, crossing mounts, for probes that rebuild absolute
 * paths in the kernel (open, filechange). The walk runs as a bpf_loop
 * callback (5.17+), so the verifier checks its body once instead of every
 * path through an unrolled loop. Components land leaf first in the per-CPU
 * walk_scratch map; the includer assembles them into its own buffer.
 *
 * Include after vigil.h. MAX_DEPTH (components) and MAX_MOUNTS (mount
 * crossings) bound the walk; the includer may define them first.
 */
#ifndef VIGIL_DENTRY_WALK_H
#define VIGIL_DENTRY_WALK_H

#ifndef MAX_DEPTH
#define MAX_DEPTH 48
#endif
#ifndef MAX_MOUNTS
#define MAX_MOUNTS 8
#endif

/* Directory components collected on the way up, leaf first. */
struct walk {
	__u64 names[MAX_DEPTH];
	__u32 lens[MAX_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk);
} walk_scratch SEC(".maps");

struct walk_ctx {
	__u64 d;	/* struct dentry * */
	__u64 vm;	/* struct vfsmount * */
	__u64 m;	/* struct mount * */
	__u64 root_d;
	__u64 root_mnt;
	__u32 n;	/* components collected */
	__u32 done;	/* 1: reached the root */
};

static long walk_step(__u32 i, void *arg)
{
	struct walk_ctx *c = arg;
	struct dentry *d = (struct dentry *)c->d, *parent;
	struct vfsmount *vm = (struct vfsmount *)c->vm;
	struct mount *m = (struct mount *)c->m;
	__u32 zero = 0;
	struct walk *w;

	if (c->d == c->root_d && c->vm == c->root_mnt) {
		c->done = 1;
		return 1;
	}
	if (d == BPF_CORE_READ(vm, mnt_root)) {
		struct mount *pm = BPF_CORE_READ(m, mnt_parent);

		if (!pm || pm == m) {
			c->done = 1; /* the namespace's root mount */
			return 1;
		}
		c->d = (__u64)BPF_CORE_READ(m, mnt_mountpoint);
		c->m = (__u64)pm;
		c->vm = (__u64)pm + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d) {
		c->done = 1;
		return 1;
	}
	w = bpf_map_lookup_elem(&walk_scratch, &zero);
	__u32 n = c->n;
	if (!w || n >= MAX_DEPTH)
		return 1;
	w->names[n] = (__u64)BPF_CORE_READ(d, d_name.name);
	w->lens[n] = BPF_CORE_READ(d, d_name.len);
	c->n = n + 1;
	c->d = (__u64)parent;
	return 0;
}

/*
 * Collect the components of the directory at (d, vm) up to the task's root,
 * leaf first. Returns the number of components, or -1 when the walk did not
 * reach the root within its bounds.
 */
static __always_inline int walk_dir(struct dentry *d, struct vfsmount *vm, struct path *root)
{
	struct walk_ctx c = {
		.d = (__u64)d,
		.vm = (__u64)vm,
		.m = (__u64)container_of(vm, struct mount, mnt),
		.root_d = (__u64)BPF_CORE_READ(root, dentry),
		.root_mnt = (__u64)BPF_CORE_READ(root, mnt),
	};

	bpf_loop(MAX_DEPTH + MAX_MOUNTS, walk_step, &c, 0);
	return c.done ? (int)c.n : -1;
}

#endif /* VIGIL_DENTRY_WALK_H */
