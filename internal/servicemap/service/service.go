// Package service names the service a process belongs to: the node of the
// service map. It depends on the event header alone, so every producer of
// events (the http deriver, the tcp probe's consumers) can name services
// the same way and their edges meet on the same nodes.
package service

import (
	"strings"

	"github.com/vigilproject/vigil/internal/event"
)

// Kinds of service identity.
const (
	// KindContainer: the process runs in a container; the name is the
	// container's short id (12 hex digits, as docker and crictl print it).
	KindContainer = "container"
	// KindUnit: a host process in a systemd service unit; the name is
	// the unit (nginx.service).
	KindUnit = "unit"
	// KindProcess: any other host process; the name is its command name.
	KindProcess = "process"
	// KindExternal: a peer not seen on this node; the name is its address
	// (address:port for servers).
	KindExternal = "external"
)

// Identity is a service: what the service map draws as one node.
type Identity struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// ID is the node's stable id in the service map: kind/name.
func (i Identity) ID() string { return i.Kind + "/" + i.Name }

// Of names the service of a process: its container, else its systemd
// service unit, else its command name. Session and other scopes are not
// services (every login shell shares one), so they fall back to the
// command name.
func Of(p *event.Process) Identity {
	switch {
	case p.Container != "":
		id := p.Container
		if len(id) > 12 {
			id = id[:12]
		}
		return Identity{Name: id, Kind: KindContainer}
	case strings.HasSuffix(p.Unit, ".service"):
		return Identity{Name: p.Unit, Kind: KindUnit}
	case p.Comm != "":
		return Identity{Name: p.Comm, Kind: KindProcess}
	}
	return Identity{Name: "unknown", Kind: KindProcess}
}

// External is a peer outside this node (or not seen on it) known only by
// its address: servers as address:port, clients by address alone (their
// ports are ephemeral and would make one node per connection).
func External(addr string) Identity { return Identity{Name: addr, Kind: KindExternal} }
