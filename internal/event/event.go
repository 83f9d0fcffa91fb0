// Package event defines vigil's typed events and the bus that fans them out
// to consumers (live traces, event rules) through bounded queues.
package event

import "time"

// Kind names an event type. The same names select events in rules and traces.
type Kind string

// Event kinds produced by the probes.
const (
	KindExec    Kind = "exec"
	KindExit    Kind = "exit"
	KindFork    Kind = "fork"
	KindOpen    Kind = "open"
	KindConnect Kind = "connect"
	KindAccept  Kind = "accept"
	KindClose   Kind = "close"
)

// Event is any typed event.
type Event interface {
	EventKind() Kind
	EventHeader() *Header
}

// Process is the identity and context of the process an event belongs to.
// Field names are stable: they are the JSON keys and the names rules use.
type Process struct {
	PID  uint32 `json:"pid" doc:"process id (thread group id)"`
	TID  uint32 `json:"tid,omitempty" doc:"thread id, when it differs from the pid"`
	PPID uint32 `json:"ppid" doc:"parent process id"`
	// ParentComm is the parent's command name, read from the task when the
	// event happened (so it is right for processes gone before enrichment).
	ParentComm string `json:"parent_comm" doc:"parent's command name, read in the kernel when the event happened"`
	UID        uint32 `json:"uid" doc:"user id"`
	GID        uint32 `json:"gid" doc:"group id"`
	Comm       string `json:"comm" doc:"command name (16 bytes at most)"`
	Exe        string `json:"exe,omitempty" doc:"executable path, when known"`
	StartNS    uint64 `json:"start_time_ns" doc:"process start time (ns since boot, counting suspend; the same in every probe)"`
	CgroupID   uint64 `json:"cgroup_id" doc:"cgroup v2 id"`
	Container  string `json:"container_id,omitempty" doc:"container id; empty on the host"`
	Runtime    string `json:"container_runtime,omitempty" doc:"container runtime (docker, containerd, cri-o, podman)"`
	PodUID     string `json:"pod_uid,omitempty" doc:"Kubernetes pod UID"`
	Unit       string `json:"systemd_unit,omitempty" doc:"systemd unit of the process, if any"`
}

// Header is common to every event.
type Header struct {
	Kind Kind      `json:"kind" doc:"event kind"`
	Time time.Time `json:"time" doc:"event time"`
	Process
}

// EventHeader returns the header; embedding Header gives every event type it.
func (h *Header) EventHeader() *Header { return h }

// EventKind returns the event's kind.
func (h *Header) EventKind() Kind { return h.Kind }

// Exec is a successful or failed execve/execveat.
type Exec struct {
	Header
	Filename      string   `json:"filename" doc:"path of the program as passed to execve"`
	Args          []string `json:"args" doc:"argv (bounded in count and bytes)"`
	ArgsTruncated bool     `json:"args_truncated" doc:"argv was cut at its bound"`
	Ret           int32    `json:"ret" doc:"execve return: 0 or -errno"`
	Error         string   `json:"error,omitempty" doc:"errno name of a failed exec"`
}

// Exit is the end of a whole process (its last thread).
type Exit struct {
	Header
	ExitCode        int     `json:"exit_code" doc:"exit status (0-255)"`
	Signal          int     `json:"signal,omitempty" doc:"terminating signal number, 0 for a normal exit"`
	CoreDumped      bool    `json:"core_dumped,omitempty" doc:"the process dumped core"`
	LifetimeSeconds float64 `json:"lifetime_seconds" doc:"seconds from process start to exit"`
}

// Fork is the creation of a new process (not a thread).
type Fork struct {
	Header
	ChildPID     uint32 `json:"child_pid" doc:"pid of the new process"`
	ChildStartNS uint64 `json:"child_start_time_ns" doc:"start time of the new process (ns since boot)"`
}
