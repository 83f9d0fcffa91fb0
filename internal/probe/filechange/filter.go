package filechange

import (
	"slices"
	"strings"
)

// Capacity of the kernel's watched-tree filter, as in filechange.bpf.c and
// bpf/include/vigil_path_filter.h.
const (
	MaxWatched   = 256 // LPM trie entries
	maxKeyPrefix = 255 // longest prefix a trie key holds whole
)

// watchPlan is what the kernel filter holds for the configured prefixes:
// at most MaxWatched entries. An entry is exact when it is one of the
// configured prefixes; otherwise it is a broader prefix standing in for
// configured ones the filter could not hold (too many, or too long), and
// user space checks the events it lets through against the configured list.
type watchPlan struct {
	configured []string
	entries    []string
	exact      []bool
	// folded counts configured prefixes held only through a broader entry.
	folded int
}

// watchedBy reports whether path falls under prefix the way the kernel
// tests it: the path followed by '/' starts with the prefix, so "/etc/"
// covers /etc itself.
func watchedBy(path, prefix string) bool {
	return strings.HasPrefix(path, prefix) || (len(path)+1 == len(prefix) && strings.HasPrefix(prefix, path) && prefix[len(path)] == '/')
}

// minimal drops duplicates and prefixes covered by another one, sorted.
func minimal(ps []string) []string {
	s := slices.Clone(ps)
	slices.Sort(s)
	s = slices.Compact(s)
	var out []string
	for _, p := range s {
		// Sorted: a covering prefix comes before what it covers.
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// parent is the prefix one directory up: "/a/b/c/" and "/a/b/c" give "/a/b/".
func parent(p string) string {
	i := strings.LastIndexByte(strings.TrimSuffix(p, "/"), '/')
	if i < 0 {
		return "/"
	}
	return p[:i+1]
}

// planWatch fits the configured prefixes into the kernel filter: too long
// ones are cut at maxKeyPrefix bytes, and while there are more than
// MaxWatched the longest are replaced by their parent directory.
func planWatch(configured []string) watchPlan {
	pl := watchPlan{configured: minimal(configured)}
	es := make([]string, 0, len(pl.configured))
	for _, p := range pl.configured {
		if len(p) > maxKeyPrefix {
			p = p[:maxKeyPrefix]
		}
		es = append(es, p)
	}
	es = minimal(es)
	for len(es) > MaxWatched {
		longest := 0
		for i, e := range es {
			if len(e) > len(es[longest]) {
				longest = i
			}
		}
		es[longest] = parent(es[longest])
		es = minimal(es)
	}
	pl.entries = es
	pl.exact = make([]bool, len(es))
	for i, e := range es {
		_, pl.exact[i] = slices.BinarySearch(pl.configured, e)
	}
	for _, c := range pl.configured {
		if _, ok := slices.BinarySearch(es, c); !ok {
			pl.folded++
		}
	}
	return pl
}

// admits reports whether an event the kernel let through by entry (1 +
// index, 0: every path watched) is under a configured prefix, and which.
func (pl *watchPlan) admits(entry uint32, paths ...string) (string, bool) {
	if entry == 0 {
		return "", true
	}
	i := int(entry) - 1
	if i >= len(pl.entries) {
		return "", false
	}
	if pl.exact[i] {
		return pl.entries[i], true
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		for _, c := range pl.configured {
			if watchedBy(p, c) {
				return c, true
			}
		}
	}
	return "", false
}
