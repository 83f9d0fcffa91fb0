package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/event"
)

// lossEvery is how often live views check for lost events and warn.
const lossEvery = 2 * time.Second

// lostRecord is the JSON line a live view prints on stdout when events
// were lost since the previous one; Count is new losses, Total all so far.
type lostRecord struct {
	Kind   string    `json:"kind"` // "lost"
	Time   time.Time `json:"time"`
	Probe  string    `json:"probe"`
	Reason string    `json:"reason"`
	Count  uint64    `json:"count"`
	Total  uint64    `json:"total"`
}

// lossReporter turns the agent's loss counters into what a live view
// shows: a warning line on stderr when they grew, a summary at exit.
type lossReporter struct {
	a    *agent.Agent
	sub  *event.Subscription // may be nil
	hint string              // what to raise, e.g. "--queue or probes.open.ringbuf_size"
	seen map[string]uint64   // probe/reason -> count already reported
}

func newLossReporter(a *agent.Agent, sub *event.Subscription, hint string) *lossReporter {
	return &lossReporter{a: a, sub: sub, hint: hint, seen: map[string]uint64{}}
}

// check returns a record per probe and reason whose count grew since the
// last check, and writes one warning line about them to w.
func (r *lossReporter) check(w io.Writer) []lostRecord {
	now := time.Now()
	var out []lostRecord
	var parts []string
	for _, l := range r.a.Losses(r.sub) {
		key := l.Probe + "/" + l.Reason
		if l.Count <= r.seen[key] {
			continue
		}
		out = append(out, lostRecord{Kind: "lost", Time: now, Probe: l.Probe, Reason: l.Reason, Count: l.Count - r.seen[key], Total: l.Count})
		parts = append(parts, fmt.Sprintf("%s: %d (%s)", l.Probe, l.Count-r.seen[key], reasonText(l.Reason)))
		r.seen[key] = l.Count
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "vigil: warning: lost events in the last %s: %s\n", lossEvery, strings.Join(parts, ", "))
	}
	return out
}

// summary writes the total losses at exit (nothing when none).
func (r *lossReporter) summary(w io.Writer) {
	var parts []string
	var total uint64
	for _, l := range r.a.Losses(r.sub) {
		parts = append(parts, l.String())
		total += l.Count
	}
	if total > 0 {
		fmt.Fprintf(w, "vigil: %d events lost in total: %s; raise %s\n", total, strings.Join(parts, ", "), r.hint)
	}
}

func reasonText(reason string) string {
	if reason == agent.LossQueueFull {
		return "queue full in user space"
	}
	return "ring buffer full in the kernel"
}
