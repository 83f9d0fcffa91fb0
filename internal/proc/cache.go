// Package proc keeps what the agent knows about processes: a bounded cache
// keyed by pid whose identity is (pid, start time), seeded from /proc and kept
// current by exec/fork/exit events, and the mapping from cgroup ids to cgroup
// paths and containers.
package proc

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Process is one process (thread group) as the agent knows it. Values handed
// out by the cache share Args with the cache: treat Args as read-only.
type Process struct {
	PID       uint32    `json:"pid"`
	PPID      uint32    `json:"ppid"`
	StartNS   uint64    `json:"start_ns"` // boot-based start time (task->start_boottime); 0 = unknown
	UID       uint32    `json:"uid"`
	GID       uint32    `json:"gid"`
	Comm      string    `json:"comm"`
	Exe       string    `json:"exe,omitempty"`
	Args      []string  `json:"args,omitempty"`
	CgroupID  uint64    `json:"cgroup_id,omitempty"`
	Cgroup    string    `json:"cgroup,omitempty"` // cgroup v2 path, e.g. /system.slice/ssh.service
	Container Container `json:"container"`
	ExitedAt  time.Time `json:"exited_at,omitzero"` // zero while alive
}

// Alive reports whether the process has not been seen exiting.
func (p Process) Alive() bool { return p.ExitedAt.IsZero() }

const (
	// DefaultMaxEntries is used when NewCache is given no bound.
	DefaultMaxEntries = 65536
	// maxExited is how many exited processes stay resolvable for late events.
	maxExited = 1024
	// DefaultProcReadsPerSecond bounds the /proc reads Lookup makes on misses.
	DefaultProcReadsPerSecond = 100
)

// Cache is a bounded, concurrency-safe process cache.
//
// Live processes are evicted with the CLOCK algorithm (an approximation of
// LRU): entries sit in insertion order with a "used" bit that Get sets with an
// atomic store under the read lock, and eviction gives used entries a second
// chance. Exited processes move to a ring of the last 1024 (or maxEntries, if
// smaller), where Get still finds them until newer exits push them out.
type Cache struct {
	cg  *Cgroups
	max int

	mu         sync.RWMutex
	live       map[uint32]*entry
	head, tail *entry // CLOCK order; head is the next eviction candidate
	exited     map[uint32]*entry
	ring       []*entry // exited entries, oldest at ringPos once full
	ringPos    int
	free       []*entry // recycled entries, so steady churn does not allocate
	gen        uint64   // bumped on every insert/update; see Scan
	procRoot   string

	evictions atomic.Uint64
	misses    atomic.Uint64
	procReads atomic.Uint64

	rlMu     sync.Mutex
	rlWindow int64 // unix second of the current window
	rlCount  int
	rlLimit  int
}

type entry struct {
	p          Process
	gen        uint64
	used       atomic.Bool
	prev, next *entry
}

// NewCache returns a cache holding at most maxEntries live processes (plus a
// bounded number of exited ones). cg resolves cgroup ids; it may be nil.
func NewCache(maxEntries int, cg *Cgroups) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	return &Cache{
		cg:       cg,
		max:      maxEntries,
		live:     make(map[uint32]*entry, min(maxEntries, 4096)),
		exited:   make(map[uint32]*entry),
		ring:     make([]*entry, min(maxExited, maxEntries)),
		procRoot: "/proc",
		rlLimit:  DefaultProcReadsPerSecond,
	}
}

// SetProcReadLimit sets how many /proc reads per second Lookup may make on
// cache misses; 0 disables them.
func (c *Cache) SetProcReadLimit(perSecond int) {
	c.rlMu.Lock()
	c.rlLimit = max(perSecond, 0)
	c.rlMu.Unlock()
}

// Exec records p as the current image of p.PID and returns the stored entry.
// If the pid is cached with the same start time (or p.StartNS is 0), the
// entry is updated in place, keeping the known start time, parent and cgroup
// where p leaves them zero. A different start time means the pid was reused:
// the old process is moved to the exited area. Cgroup and Container are
// filled from p.CgroupID through the Cgroups resolver.
func (c *Cache) Exec(p Process) Process {
	// Resolve outside the lock: a miss may walk the cgroup tree.
	c.enrichCgroup(&p)
	p.ExitedAt = time.Time{}

	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.live[p.PID]; e != nil {
		if sameStart(e.p.StartNS, p.StartNS) {
			if p.StartNS == 0 {
				p.StartNS = e.p.StartNS
			}
			if p.PPID == 0 {
				p.PPID = e.p.PPID
			}
			// Same cgroup (or none given) but unresolved now: keep what we knew.
			if p.Cgroup == "" && (p.CgroupID == 0 || p.CgroupID == e.p.CgroupID) {
				p.CgroupID, p.Cgroup, p.Container = e.p.CgroupID, e.p.Cgroup, e.p.Container
			}
			e.p = p
			c.gen++
			e.gen = c.gen
			e.used.Store(true)
			return p
		}
		c.retire(e, time.Now())
	}
	c.insert(p)
	return p
}

// Fork records childPID as a copy of its parent (comm, exe, args, ids,
// cgroup), as it is until the child execs. A child already cached with the
// same start time is left alone: its exec may have been recorded first. If the
// parent is unknown nothing is recorded; Lookup will read /proc instead.
func (c *Cache) Fork(parentPID, childPID uint32, childStartNS uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.live[childPID]; e != nil {
		if sameStart(e.p.StartNS, childStartNS) {
			if e.p.StartNS == 0 {
				e.p.StartNS = childStartNS
			}
			return
		}
		c.retire(e, time.Now())
	}
	parent := c.live[parentPID]
	if parent == nil {
		// The parent may have exited before we saw the fork.
		if parent = c.exited[parentPID]; parent == nil {
			return
		}
	}
	pp := &parent.p
	c.insert(Process{
		PID:       childPID,
		PPID:      parentPID,
		StartNS:   childStartNS,
		UID:       pp.UID,
		GID:       pp.GID,
		Comm:      pp.Comm,
		Exe:       pp.Exe,
		Args:      pp.Args,
		CgroupID:  pp.CgroupID,
		Cgroup:    pp.Cgroup,
		Container: pp.Container,
	})
}

// Exit marks pid as exited and returns its final entry. startNS guards
// against pid reuse (0 skips the check). The entry stays readable through
// Get in the exited area for a while.
func (c *Cache) Exit(pid uint32, startNS uint64) (Process, bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.live[pid]; e != nil && sameStart(e.p.StartNS, startNS) {
		c.retire(e, now)
		return e.p, true
	}
	if e := c.exited[pid]; e != nil && sameStart(e.p.StartNS, startNS) {
		return e.p, true
	}
	return Process{}, false
}

// Get returns the cached process with this pid: the live one, else the most
// recently exited one. It does not allocate.
func (c *Cache) Get(pid uint32) (Process, bool) {
	c.mu.RLock()
	e := c.live[pid]
	if e != nil {
		if !e.used.Load() {
			e.used.Store(true)
		}
	} else if e = c.exited[pid]; e == nil {
		c.mu.RUnlock()
		c.misses.Add(1)
		return Process{}, false
	}
	p := e.p
	c.mu.RUnlock()
	return p, true
}

// Lookup enriches an event: the cached process, or on a miss a rate-limited
// read of /proc/<pid>, or at least the pid with the cgroup and container that
// cgroupID resolves to. A non-zero cgroupID is taken as current: if the cached
// process has moved cgroups (or its cgroup could not be resolved at exec),
// the entry is updated.
func (c *Cache) Lookup(pid uint32, cgroupID uint64) Process {
	if p, ok := c.Get(pid); ok {
		if cgroupID == 0 || (p.CgroupID == cgroupID && p.Cgroup != "") || !p.Alive() || c.cg == nil {
			return p
		}
		return c.setCgroup(p, cgroupID)
	}
	if c.allowProcRead() {
		c.mu.RLock()
		root := c.procRoot
		c.mu.RUnlock()
		if p, err := readProcess(root, pid); err == nil {
			c.procReads.Add(1)
			return c.addRead(p, cgroupID)
		}
	}
	p := Process{PID: pid, CgroupID: cgroupID}
	c.enrichCgroup(&p)
	return p
}

// setCgroup moves a cached process to cgroupID.
func (c *Cache) setCgroup(p Process, cgroupID uint64) Process {
	e, ok := c.cg.lookup(cgroupID)
	if !ok && p.CgroupID == cgroupID {
		return p // still unresolvable; nothing new to store
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if le := c.live[p.PID]; le != nil && sameStart(le.p.StartNS, p.StartNS) {
		le.p.CgroupID, le.p.Cgroup, le.p.Container = cgroupID, e.path, e.container
		return le.p
	}
	p.CgroupID, p.Cgroup, p.Container = cgroupID, e.path, e.container
	return p
}

// addRead stores a process read from /proc by Lookup, unless an event
// recorded the pid meanwhile.
func (c *Cache) addRead(p Process, cgroupID uint64) Process {
	if cgroupID != 0 {
		p.CgroupID = cgroupID
		if e, ok := c.cg.lookup(cgroupID); ok {
			p.Cgroup, p.Container = e.path, e.container
		}
	} else {
		p.CgroupID = c.cg.idOf(p.Cgroup)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.live[p.PID]; e != nil {
		return e.p
	}
	c.insert(p)
	return p
}

// enrichCgroup fills Cgroup and Container from CgroupID, or Container from
// Cgroup when only the path is known.
func (c *Cache) enrichCgroup(p *Process) {
	if p.CgroupID != 0 && p.Cgroup == "" {
		if e, ok := c.cg.lookup(p.CgroupID); ok {
			p.Cgroup, p.Container = e.path, e.container
		} else if path, ok := c.cgroupFromProc(p.PID, p.CgroupID); ok {
			p.Cgroup, p.Container = path, ParseCgroupPath(path)
			c.cg.remember(p.CgroupID, path, p.Container)
		}
	} else if p.Cgroup != "" && p.Container == (Container{}) {
		p.Container = ParseCgroupPath(p.Cgroup)
	}
}

// cgroupFromProc resolves a cgroup id the tree walk has not seen yet (a new
// container whose first exec comes before the next walk) from the process's
// own /proc/<pid>/cgroup, accepted only if that path has the same id.
func (c *Cache) cgroupFromProc(pid uint32, id uint64) (string, bool) {
	if c.cg == nil || pid == 0 || !c.allowProcRead() {
		return "", false
	}
	c.mu.RLock()
	root := c.procRoot
	c.mu.RUnlock()
	data, err := readLimited(root+"/"+strconv.FormatUint(uint64(pid), 10)+"/cgroup", 4096)
	if err != nil {
		return "", false
	}
	c.procReads.Add(1)
	path, _ := parseProcCgroup(data)
	if path == "" || c.cg.idOf(path) != id {
		return "", false
	}
	return path, true
}

func (c *Cache) allowProcRead() bool {
	now := time.Now().Unix()
	c.rlMu.Lock()
	defer c.rlMu.Unlock()
	if now != c.rlWindow {
		c.rlWindow, c.rlCount = now, 0
	}
	if c.rlCount >= c.rlLimit {
		return false
	}
	c.rlCount++
	return true
}

// Ancestors returns the parent, grandparent, ... of pid, at most depth of
// them, stopping at the first unknown parent. A cached "parent" that started
// after the child is a reused pid, not the parent, and ends the chain.
func (c *Cache) Ancestors(pid uint32, depth int) []Process {
	if depth <= 0 {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.find(pid)
	if e == nil {
		return nil
	}
	var out []Process
	for len(out) < depth {
		ppid := e.p.PPID
		if ppid == 0 || ppid == e.p.PID {
			break
		}
		pe := c.find(ppid)
		if pe == nil {
			break
		}
		if pe.p.StartNS != 0 && e.p.StartNS != 0 && pe.p.StartNS/tickNS > e.p.StartNS/tickNS {
			break
		}
		if out == nil {
			out = make([]Process, 0, min(depth, 8))
		}
		out = append(out, pe.p)
		e = pe
	}
	return out
}

func (c *Cache) find(pid uint32) *entry {
	if e := c.live[pid]; e != nil {
		return e
	}
	return c.exited[pid]
}

// Cgroups is the cache's cgroup resolver (nil if it has none), for other
// consumers of cgroup ids to share its cache and tree walks.
func (c *Cache) Cgroups() *Cgroups { return c.cg }

// Len returns the number of live processes cached.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.live)
}

func (c *Cache) exitedLen() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.exited)
}

// Scan seeds the cache from procRoot (normally /proc; /host/proc when the
// agent runs in a container) and reconciles it: live entries whose process is
// gone are moved to the exited area, which catches lost exit events. It also
// sets the root Lookup reads on misses. Entries recorded by events while the
// scan runs win over what the scan read.
func (c *Cache) Scan(procRoot string) error {
	d, err := os.Open(procRoot)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procRoot = procRoot
	startGen := c.gen
	c.mu.Unlock()

	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	seen := make(map[uint32]struct{}, len(names))
	cgIDs := make(map[string]uint64)
	batch := make([]Process, 0, 64)
	for _, name := range names {
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue // not a pid directory
		}
		p, err := readProcess(procRoot, uint32(n))
		if err != nil {
			continue // exited while we looked
		}
		seen[p.PID] = struct{}{}
		if c.cg != nil && p.Cgroup != "" {
			id, ok := cgIDs[p.Cgroup]
			if !ok {
				id = c.cg.idOf(p.Cgroup)
				cgIDs[p.Cgroup] = id
				c.cg.remember(id, p.Cgroup, ParseCgroupPath(p.Cgroup))
			}
			p.CgroupID = id
		}
		batch = append(batch, p)
		if len(batch) == cap(batch) {
			c.applyScan(batch, startGen)
			batch = batch[:0]
		}
	}
	c.applyScan(batch, startGen)

	now := time.Now()
	c.mu.Lock()
	for pid, e := range c.live {
		if _, ok := seen[pid]; !ok && e.gen <= startGen {
			c.retire(e, now)
		}
	}
	c.mu.Unlock()
	return nil
}

func (c *Cache) applyScan(batch []Process, startGen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range batch {
		if e := c.live[p.PID]; e != nil {
			if e.gen > startGen {
				continue // an event updated it during the scan
			}
			if sameStart(e.p.StartNS, p.StartNS) {
				if e.p.StartNS != 0 {
					p.StartNS = e.p.StartNS // events carry the exact ns
				}
				e.p = p
				c.gen++
				e.gen = c.gen
				continue
			}
			c.retire(e, time.Now())
		}
		c.insert(p)
	}
}

// insert adds p as a new live entry, evicting one if full. Caller holds mu
// and has checked that p.PID is not live.
func (c *Cache) insert(p Process) {
	if len(c.live) >= c.max {
		c.evict()
	}
	var e *entry
	if n := len(c.free); n > 0 {
		e, c.free = c.free[n-1], c.free[:n-1]
	} else {
		e = new(entry)
	}
	e.p = p
	c.gen++
	e.gen = c.gen
	c.live[p.PID] = e
	c.pushTail(e)
}

// evict removes one live entry, giving recently used ones a second chance.
// The loop ends within two passes because each visit clears a used bit.
func (c *Cache) evict() {
	for e := c.head; e != nil; e = c.head {
		if e.used.Load() {
			e.used.Store(false)
			c.unlink(e)
			c.pushTail(e)
			continue
		}
		c.unlink(e)
		delete(c.live, e.p.PID)
		c.evictions.Add(1)
		c.recycle(e)
		return
	}
}

// retire moves a live entry to the exited ring. Caller holds mu.
func (c *Cache) retire(e *entry, now time.Time) {
	c.unlink(e)
	delete(c.live, e.p.PID)
	e.p.ExitedAt = now
	if old := c.ring[c.ringPos]; old != nil {
		if c.exited[old.p.PID] == old {
			delete(c.exited, old.p.PID)
		}
		c.recycle(old)
	}
	c.ring[c.ringPos] = e
	c.ringPos = (c.ringPos + 1) % len(c.ring)
	c.exited[e.p.PID] = e
}

func (c *Cache) recycle(e *entry) {
	if len(c.free) >= 256 {
		return
	}
	e.p = Process{}
	e.used.Store(false)
	e.prev, e.next = nil, nil
	c.free = append(c.free, e)
}

func (c *Cache) pushTail(e *entry) {
	e.prev, e.next = c.tail, nil
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
}

func (c *Cache) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// Collectors returns the cache's self-metrics and those of the Cgroups
// resolver it was given, so one registration covers both. Do not also
// register that resolver's own Collectors.
func (c *Cache) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_process_cache_entries",
			Help: "Live processes in the process cache.",
		}, func() float64 { return float64(c.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_process_cache_exited_entries",
			Help: "Exited processes kept so that late events can still be enriched.",
		}, func() float64 { return float64(c.exitedLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_process_cache_max_entries",
			Help: "Bound on live processes in the process cache.",
		}, func() float64 { return float64(c.max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_process_cache_evictions_total",
			Help: "Live processes evicted from the process cache because it was full.",
		}, func() float64 { return float64(c.evictions.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_process_cache_misses_total",
			Help: "Process lookups by pid not found in the process cache.",
		}, func() float64 { return float64(c.misses.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_process_cache_proc_reads_total",
			Help: "Processes read from /proc on a cache miss.",
		}, func() float64 { return float64(c.procReads.Load()) }),
	}
	if c.cg != nil {
		cs = append(cs, c.cg.Collectors()...)
	}
	return cs
}
