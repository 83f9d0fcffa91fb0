package kernel

import (
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilproject/vigil/internal/proc"
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

// Cgroup2Root returns the cgroup v2 hierarchy to attach to for a configured
// directory (proc.Cgroup2Root: dir, or dir/unified on hybrid hosts;
// /sys/fs/cgroup when dir is empty), or an error when there is none.
func Cgroup2Root(dir string) (string, error) {
	configured := dir
	if dir == "" {
		dir = "/sys/fs/cgroup"
	}
	if root := proc.Cgroup2Root(dir); proc.IsCgroup2(root) {
		return root, nil
	}
	if configured != "" {
		return "", fmt.Errorf("cgroup_root %s is not a cgroup v2 mount", configured)
	}
	return "", errors.New("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}
