/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * A path-prefix filter for many prefixes: an LPM trie keyed on the path's
 * bytes. One lookup finds the longest configured prefix of a path, whatever
 * the number of prefixes (up to the map's max_entries), instead of a loop
 * comparing each prefix in turn.
 *
 * The key is the path's first VIGIL_PATH_KEY_BYTES - 1 bytes followed by a
 * '/', so that a prefix written as a directory ("/etc/") also covers the
 * directory itself ("/etc"). A prefix is stored with prefixlen = 8 * its
 * length; user space keeps prefixes below VIGIL_PATH_KEY_BYTES bytes (a
 * longer one is stored cut, which lets more through, never less, and user
 * space checks the whole prefix again).
 *
 * Use:
 *	VIGIL_PATH_FILTER(watched, 256);
 *	struct vigil_path_key *k = <per-CPU scratch>;
 *	__u32 *id = vigil_path_filter_match(&watched, k, path, len);
 * where path points to len bytes of map memory (a scratch buffer).
 */
#ifndef VIGIL_PATH_FILTER_H
#define VIGIL_PATH_FILTER_H

#define VIGIL_PATH_KEY_BYTES 256 /* the LPM trie's largest key data */

struct vigil_path_key {
	__u32 prefixlen; /* bits */
	__u8 data[VIGIL_PATH_KEY_BYTES];
};

/* The value is the prefix's index in the configured list (for user space). */
#define VIGIL_PATH_FILTER(name, entries)                                       \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                           \
		__uint(max_entries, entries);                                  \
		__uint(map_flags, BPF_F_NO_PREALLOC);                          \
		__type(key, struct vigil_path_key);                            \
		__type(value, __u32);                                          \
	} name SEC(".maps")

/*
 * vigil_path_filter_match returns the value of the longest prefix in
 * filter that path (len bytes, no NUL needed) starts with, or NULL. key is
 * scratch space the caller owns (it is too large for the stack of most
 * programs).
 */
static __always_inline __u32 *vigil_path_filter_match(void *filter, struct vigil_path_key *key,
						     const char *path, __u32 len)
{
	__u64 n = len;

	if (n > VIGIL_PATH_KEY_BYTES - 1)
		n = VIGIL_PATH_KEY_BYTES - 1;
	/* Opaque to the compiler, so the verifier sees the bound. */
	asm volatile("%[n] &= 255" : [n] "+r"(n));
	if (n && bpf_probe_read_kernel(key->data, n, path))
		return 0;
	key->data[n] = '/';
	key->prefixlen = (n + 1) * 8;
	return bpf_map_lookup_elem(filter, key);
}

#endif /* VIGIL_PATH_FILTER_H */
