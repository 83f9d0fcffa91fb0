package kernel

import (
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// cgroup_skb: Target is a cgroup v2 directory (empty: the cgroup v2 root,
// which covers every cgroup below it); the direction comes from the
// program's section (cgroup_skb/ingress or cgroup_skb/egress).
func init() { registerAttacher(CgroupSKB, attachCgroupSKB) }

func attachCgroupSKB(p *ebpf.Program, spec *ebpf.ProgramSpec, h Hook) ([]io.Closer, string, error) {
	dir, err := Cgroup2Root(h.Target)
	if err != nil {
		return nil, "", err
	}
	if spec == nil || (spec.AttachType != ebpf.AttachCGroupInetIngress && spec.AttachType != ebpf.AttachCGroupInetEgress) {
		return nil, "", errors.New("program is not in a cgroup_skb/ingress or cgroup_skb/egress section")
	}
	return one(link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: spec.AttachType, Program: p}))
}

// Cgroup2Root returns dir when it is a cgroup v2 mount or directory, or,
// when dir is empty, finds the cgroup v2 root (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on hybrid hosts).
func Cgroup2Root(dir string) (string, error) {
	candidates := []string{dir}
	if dir == "" {
		candidates = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
	}
	for _, c := range candidates {
		var st unix.Statfs_t
		if err := unix.Statfs(c, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return c, nil
		}
	}
	if dir != "" {
		return "", fmt.Errorf("cgroup_root %s is not a cgroup v2 mount", dir)
	}
	return "", errors.New("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}
