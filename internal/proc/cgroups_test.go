package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func mkdirs(t *testing.T, root string, rel ...string) {
	t.Helper()
	for _, r := range rel {
		if err := os.MkdirAll(filepath.Join(root, r), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// A plain directory tree stands in for the cgroup2 mount: ids are inode
// numbers either way.
func TestCgroupsResolve(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "system.slice/ssh.service", "system.slice/docker-"+id1+".scope")
	g := NewCgroups(root, 100)
	g.walkInterval = 0

	if p, ok := g.Path(inode(t, root)); !ok || p != "/" {
		t.Errorf("root: Path = %q, %v", p, ok)
	}
	ssh := inode(t, filepath.Join(root, "system.slice/ssh.service"))
	if p, ok := g.Path(ssh); !ok || p != "/system.slice/ssh.service" {
		t.Errorf("Path = %q, %v", p, ok)
	}
	if c := g.Container(ssh); c != (Container{Unit: "ssh.service"}) {
		t.Errorf("Container = %+v", c)
	}
	dock := inode(t, filepath.Join(root, "system.slice/docker-"+id1+".scope"))
	if c := g.Container(dock); c != (Container{ID: id1, Runtime: "docker"}) {
		t.Errorf("Container = %+v", c)
	}
	if g.walks.Load() != 1 {
		t.Errorf("walks = %d, want 1: one walk fills the whole cache", g.walks.Load())
	}
	if _, ok := g.Path(0); ok {
		t.Error("id 0 resolved")
	}
	if _, ok := g.Path(1 << 62); ok {
		t.Error("unknown id resolved")
	}
	if g.misses.Load() != 2 {
		t.Errorf("misses = %d, want 2", g.misses.Load())
	}
	if g.Len() != 4 {
		t.Errorf("Len = %d, want 4", g.Len())
	}
}

func TestCgroupsWalkRateLimited(t *testing.T) {
	root := t.TempDir()
	g := NewCgroups(root, 100)
	g.walkInterval = time.Hour

	if _, ok := g.Path(inode(t, root)); !ok {
		t.Fatal("first miss did not walk")
	}
	mkdirs(t, root, "new.service")
	id := inode(t, filepath.Join(root, "new.service"))
	if _, ok := g.Path(id); ok {
		t.Fatal("second walk happened within the interval")
	}
	if g.walks.Load() != 1 {
		t.Errorf("walks = %d, want 1", g.walks.Load())
	}
	g.lastWalk = time.Time{} // the interval has passed
	if p, ok := g.Path(id); !ok || p != "/new.service" {
		t.Errorf("after the interval: Path = %q, %v", p, ok)
	}
}

func TestCgroupsRefreshDropsRemoved(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a.service")
	g := NewCgroups(root, 100)
	g.walkInterval = 0
	a := inode(t, filepath.Join(root, "a.service"))
	if _, ok := g.Path(a); !ok {
		t.Fatal("a not found")
	}
	if err := os.Remove(filepath.Join(root, "a.service")); err != nil {
		t.Fatal(err)
	}
	g.Path(1 << 62) // a miss walks again
	if _, ok := g.byID[a]; ok {
		t.Error("removed cgroup still cached after a walk")
	}
}

func TestCgroupsBounded(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/b/c/d/e", "f/g/h")
	g := NewCgroups(root, 3)
	g.walkInterval = 0
	want := inode(t, filepath.Join(root, "f/g/h"))
	if p, ok := g.Path(want); !ok || p != "/f/g/h" {
		t.Errorf("wanted id beyond the bound: Path = %q, %v", p, ok)
	}
	if n := g.Len(); n > 4 {
		t.Errorf("Len = %d, want at most max+1", n)
	}
	g.remember(12345, "/x", Container{})
	if _, ok := g.byID[12345]; ok && g.Len() > 4 {
		t.Error("remember grew the cache past its bound")
	}
}

func TestCgroupsNil(t *testing.T) {
	var g *Cgroups
	if _, ok := g.Path(1); ok {
		t.Error("nil resolver resolved")
	}
	if c := g.Container(1); c != (Container{}) {
		t.Error("nil resolver returned a container")
	}
	if g.Len() != 0 || g.Root() != "" || g.idOf("/") != 0 {
		t.Error("nil resolver not empty")
	}
}

// realCgroup creates a cgroup under the host's cgroup2 mount, or skips.
func realCgroup(t *testing.T, rel string) (*Cgroups, string) {
	t.Helper()
	g := NewCgroups("/sys/fs/cgroup", 4096)
	if !IsCgroup2(g.Root()) {
		t.Skip("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	dir := filepath.Join(g.Root(), rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup (needs root): %v", err)
	}
	t.Cleanup(func() {
		// rmdir of a cgroup fails while it still has (zombie) members;
		// the killed child may take a moment to be released.
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for d := filepath.Dir(dir); d != g.Root() && len(d) > len(g.Root()); d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
	return g, dir
}

func TestCgroupsRealHierarchy(t *testing.T) {
	rel := "vigil-test-" + strconv.Itoa(os.Getpid()) + "/system.slice/docker-" + id1 + ".scope"
	g, dir := realCgroup(t, rel)
	g.walkInterval = 0
	id := inode(t, dir)
	if p, ok := g.Path(id); !ok || p != "/"+rel {
		t.Errorf("Path(%d) = %q, %v, want %q", id, p, ok, "/"+rel)
	}
	if c := g.Container(id); c != (Container{ID: id1, Runtime: "docker"}) {
		t.Errorf("Container = %+v", c)
	}
	if p, ok := g.Path(1); !ok || p != "/" {
		t.Errorf("the root cgroup has id 1: Path(1) = %q, %v", p, ok)
	}
}

// Run with -race: walks, scans teaching ids, and lookups at once.
func TestCgroupsConcurrent(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a.service", "b.service", "c/d.scope")
	ids := []uint64{inode(t, filepath.Join(root, "a.service")), inode(t, filepath.Join(root, "c/d.scope")), 1 << 62}
	g := NewCgroups(root, 100)
	g.walkInterval = 0
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := ids[(i+w)%len(ids)]
				if w == 0 {
					g.remember(uint64(1000+i), "/x", Container{})
				} else if p, ok := g.Path(id); ok && p == "" {
					t.Error("empty path")
				}
			}
		}(w)
	}
	wg.Wait()
}
