package proc

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// DefaultCgroupWalkInterval is the minimum time between two walks of the
// cgroup hierarchy. A walk stats every cgroup directory, so ids that never
// resolve (a cgroup removed before we saw it) must not trigger one per event.
const DefaultCgroupWalkInterval = 500 * time.Millisecond

// Cgroups maps cgroup v2 ids to paths and containers. The id of a cgroup is
// the inode number of its directory in the cgroup2 mount; it is what BPF's
// bpf_get_current_cgroup_id() returns. The map is filled by walking the
// hierarchy on a miss; a walk replaces the whole map, so removed cgroups
// disappear with it. A nil *Cgroups resolves nothing.
type Cgroups struct {
	root string
	max  int

	mu   sync.RWMutex
	byID map[uint64]cgroupEntry

	walkMu       sync.Mutex // one walk at a time; losers do not wait
	lastWalk     time.Time  // guarded by walkMu
	walkInterval time.Duration

	misses atomic.Uint64
	walks  atomic.Uint64
}

type cgroupEntry struct {
	path      string
	container Container
}

// NewCgroups returns a resolver for the cgroup2 hierarchy mounted at root
// (normally /sys/fs/cgroup) that keeps at most max ids. If root is not a
// cgroup2 mount but root/unified is (systemd's hybrid layout), that is used.
func NewCgroups(root string, max int) *Cgroups {
	if max <= 0 {
		max = 16384
	}
	return &Cgroups{
		root:         Cgroup2Root(root),
		max:          max,
		byID:         make(map[uint64]cgroupEntry),
		walkInterval: DefaultCgroupWalkInterval,
	}
}

// Cgroup2Root returns where the cgroup v2 hierarchy is for a configured
// root: root itself, or root/unified on hybrid hosts.
func Cgroup2Root(root string) string {
	root = filepath.Clean(root)
	if IsCgroup2(root) {
		return root
	}
	if u := filepath.Join(root, "unified"); IsCgroup2(u) {
		return u
	}
	return root
}

// IsCgroup2 reports whether path is in a cgroup v2 hierarchy.
func IsCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Root returns the directory the ids are resolved in.
func (g *Cgroups) Root() string {
	if g == nil {
		return ""
	}
	return g.root
}

// Path returns the path of cgroup id relative to the root ("/" for the root,
// "/system.slice/ssh.service" for a service).
func (g *Cgroups) Path(id uint64) (string, bool) {
	e, ok := g.lookup(id)
	return e.path, ok
}

// Container returns the container of cgroup id, or the zero Container if the
// id is unknown.
func (g *Cgroups) Container(id uint64) Container {
	e, _ := g.lookup(id)
	return e.container
}

func (g *Cgroups) lookup(id uint64) (cgroupEntry, bool) {
	if g == nil || id == 0 {
		return cgroupEntry{}, false
	}
	g.mu.RLock()
	e, ok := g.byID[id]
	g.mu.RUnlock()
	if ok {
		return e, true
	}
	g.misses.Add(1)
	if !g.walkMu.TryLock() {
		return cgroupEntry{}, false
	}
	defer g.walkMu.Unlock()
	// A walk may have finished between our miss and taking walkMu.
	g.mu.RLock()
	e, ok = g.byID[id]
	g.mu.RUnlock()
	if ok {
		return e, true
	}
	if now := time.Now(); now.Sub(g.lastWalk) >= g.walkInterval {
		g.lastWalk = now
		g.refresh(id)
		g.mu.RLock()
		e, ok = g.byID[id]
		g.mu.RUnlock()
	}
	return e, ok
}

// refresh walks the hierarchy and replaces the map. When there are more
// cgroups than max, the one being looked up is kept regardless.
func (g *Cgroups) refresh(want uint64) {
	g.walks.Add(1)
	m := make(map[uint64]cgroupEntry, min(g.Len()+16, g.max))
	_ = filepath.WalkDir(g.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed mid-walk is not an error
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if len(m) >= g.max && st.Ino != want {
			return nil
		}
		rel := "/"
		if p != g.root {
			rel = p[len(g.root):]
		}
		// Reuse the parsed container of cgroups we already knew. The old
		// map is still live (remember writes to it), so read it locked.
		g.mu.RLock()
		e, ok := g.byID[st.Ino]
		g.mu.RUnlock()
		if !ok || e.path != rel {
			e = cgroupEntry{path: rel, container: ParseCgroupPath(rel)}
		}
		m[st.Ino] = e
		return nil
	})
	g.mu.Lock()
	g.byID = m
	g.mu.Unlock()
}

// remember records an id learned elsewhere (a /proc scan), sparing a walk.
func (g *Cgroups) remember(id uint64, path string, c Container) {
	if g == nil || id == 0 {
		return
	}
	g.mu.Lock()
	if _, ok := g.byID[id]; ok || len(g.byID) < g.max {
		g.byID[id] = cgroupEntry{path: path, container: c}
	}
	g.mu.Unlock()
}

// idOf returns the cgroup id of path (relative to the root), or 0.
func (g *Cgroups) idOf(path string) uint64 {
	if g == nil || path == "" {
		return 0
	}
	info, err := os.Stat(filepath.Join(g.root, path))
	if err != nil {
		return 0
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// Len returns the number of cached ids.
func (g *Cgroups) Len() int {
	if g == nil {
		return 0
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.byID)
}

// Collectors returns the resolver's self-metrics. A Cache built with this
// resolver already includes them in its own Collectors.
func (g *Cgroups) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_cgroup_cache_entries",
			Help: "Cgroup ids currently cached with their path and container.",
		}, func() float64 { return float64(g.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_cgroup_cache_misses_total",
			Help: "Cgroup id lookups not found in the cache.",
		}, func() float64 { return float64(g.misses.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_cgroup_cache_walks_total",
			Help: "Walks of the cgroup hierarchy made to resolve unknown ids.",
		}, func() float64 { return float64(g.walks.Load()) }),
	}
}
