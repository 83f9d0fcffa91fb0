package probe

import (
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/proc"
)

// EventProcess turns a process cache entry into an event's process context.
// Probes then overwrite the fields their kernel record knows more precisely
// (tid, comm at the time of the event, cgroup id).
func EventProcess(pr proc.Process) event.Process {
	return event.Process{
		PID: pr.PID, PPID: pr.PPID, UID: pr.UID, GID: pr.GID, Comm: pr.Comm, Exe: pr.Exe,
		StartNS: pr.StartNS, CgroupID: pr.CgroupID,
		Container: pr.Container.ID, Runtime: pr.Container.Runtime, PodUID: pr.Container.PodUID, Unit: pr.Container.Unit,
	}
}

// CgroupResolver returns the agent's shared cgroup resolver when it reads the
// same hierarchy as root, so probes do not each cache and walk the tree, and a
// resolver of the probe's own otherwise (tests, or another configured mount).
func (e *Env) CgroupResolver(root string) *proc.Cgroups {
	if e.Procs != nil {
		if cg := e.Procs.Cgroups(); cg != nil && cg.Root() == proc.Cgroup2Root(root) {
			return cg
		}
	}
	return proc.NewCgroups(root, 4096)
}
