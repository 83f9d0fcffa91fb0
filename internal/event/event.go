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
	PID  uint32 `json:"pid"`
	TID  uint32 `json:"tid,omitempty"`
	PPID uint32 `json:"ppid"`
	// ParentComm is the parent's command name, read from the task when the
	// event happened (so it is right for processes gone before enrichment).
	ParentComm string `json:"parent_comm"`
	UID        uint32 `json:"uid"`
	GID        uint32 `json:"gid"`
	Comm       string `json:"comm"`
	Exe        string `json:"exe,omitempty"`
	StartNS    uint64 `json:"start_time_ns"`
	CgroupID   uint64 `json:"cgroup_id"`
	Container  string `json:"container_id,omitempty"`
	Runtime    string `json:"container_runtime,omitempty"`
	PodUID     string `json:"pod_uid,omitempty"`
	Unit       string `json:"systemd_unit,omitempty"`
}

// Header is common to every event.
type Header struct {
	Kind Kind      `json:"kind"`
	Time time.Time `json:"time"`
	Process
}

// EventHeader returns the header; embedding Header gives every event type it.
func (h *Header) EventHeader() *Header { return h }

// EventKind returns the event's kind.
func (h *Header) EventKind() Kind { return h.Kind }

// Exec is a successful or failed execve/execveat.
type Exec struct {
	Header
	Filename      string   `json:"filename"`
	Args          []string `json:"args"`
	ArgsTruncated bool     `json:"args_truncated"`
	Ret           int32    `json:"ret"`
	Error         string   `json:"error,omitempty"`
}

// Exit is the end of a whole process (its last thread).
type Exit struct {
	Header
	ExitCode        int     `json:"exit_code"`
	Signal          int     `json:"signal,omitempty"`
	CoreDumped      bool    `json:"core_dumped,omitempty"`
	LifetimeSeconds float64 `json:"lifetime_seconds"`
}

// Fork is the creation of a new process (not a thread).
type Fork struct {
	Header
	ChildPID     uint32 `json:"child_pid"`
	ChildStartNS uint64 `json:"child_start_time_ns"`
}
