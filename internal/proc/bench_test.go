package proc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func benchCache(b *testing.B) (*Cache, uint64) {
	root := b.TempDir()
	dir := filepath.Join(root, "kubepods/pod"+uid+"/"+id1)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		b.Fatal(err)
	}
	return NewCache(65536, NewCgroups(root, 100)), info.Sys().(*syscall.Stat_t).Ino
}

// One exec event and one enrichment per op, pids cycling through 50k.
func BenchmarkExecGet(b *testing.B) {
	c, cgid := benchCache(b)
	p := Process{PPID: 1, UID: 1000, Comm: "worker", Exe: "/usr/bin/worker",
		Args: []string{"worker", "--id", "7"}, CgroupID: cgid}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.PID = uint32(i%50000) + 2
		p.StartNS = uint64(i) + 1
		c.Exec(p)
		if _, ok := c.Get(p.PID); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkLookupHit(b *testing.B) {
	c, cgid := benchCache(b)
	for pid := uint32(1); pid <= 10000; pid++ {
		c.Exec(Process{PID: pid, StartNS: 1, Comm: "x", CgroupID: cgid})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if p := c.Lookup(uint32(i%10000)+1, cgid); p.Container.ID == "" {
			b.Fatal("not enriched")
		}
		i++
	}
}

func BenchmarkLookupHitParallel(b *testing.B) {
	c, cgid := benchCache(b)
	for pid := uint32(1); pid <= 10000; pid++ {
		c.Exec(Process{PID: pid, StartNS: 1, Comm: "x", CgroupID: cgid})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Lookup(uint32(i%10000)+1, cgid)
			i++
		}
	})
}
