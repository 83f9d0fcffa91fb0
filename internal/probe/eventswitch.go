package probe

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilproject/vigil/internal/event"
)

// EventSwitch keeps a probe's event records off in the kernel while nothing
// consumes its kind, so an unwatched probe only counts: element 0 of the
// Control array map holds 1 (send records) or 0. Probes whose metrics come
// from in-kernel counters use it; Start calls Set(Wanted()) once and Run
// calls Follow.
type EventSwitch struct {
	Control *ebpf.Map
	Kind    event.Kind
	// Enabled is the probe's own `events` knob: off, records stay off.
	Enabled bool

	on bool
}

// Wanted reports whether records should flow: the knob is on and the bus
// has a subscriber for Kind.
func (s *EventSwitch) Wanted(bus *event.Bus) bool {
	return s.Enabled && bus != nil && bus.Wants(s.Kind)
}

// Set turns records on or off in the kernel.
func (s *EventSwitch) Set(on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	if err := s.Control.Put(uint32(0), v); err != nil {
		return fmt.Errorf("switching %s events: %w", s.Kind, err)
	}
	s.on = on
	return nil
}

// Follow checks every second, until ctx ends, whether anyone consumes the
// kind and tells the kernel. Only one goroutine may call Set meanwhile.
func (s *EventSwitch) Follow(ctx context.Context, bus *event.Bus, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if want := s.Wanted(bus); want != s.on {
				if err := s.Set(want); err != nil {
					log.Warn("switching events failed", "kind", s.Kind, "err", err)
				}
			}
		}
	}
}
