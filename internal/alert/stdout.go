package alert

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stdout writes one line per alert to w. It is the notifier used when no
// Alertmanager or webhook is configured, so `vigil run` alone shows alerts:
//
//	2026-01-02T15:04:05Z FIRING ExecBurst {host="n1", severity="warning"} summary="..."
type Stdout struct {
	w   io.Writer
	now func() time.Time
}

// NewStdout returns a notifier writing to w (usually os.Stdout).
func NewStdout(w io.Writer) *Stdout { return &Stdout{w: w, now: time.Now} }

// Name implements Notifier.
func (s *Stdout) Name() string { return "stdout" }

// Notify implements Notifier.
func (s *Stdout) Notify(_ context.Context, alerts []Alert) error {
	var b strings.Builder
	now := s.now()
	for _, a := range alerts {
		state := "FIRING"
		if a.Resolved(now) {
			state = "RESOLVED"
		}
		fmt.Fprintf(&b, "%s %s %s {", now.UTC().Format(time.RFC3339), state, a.Name())
		first := true
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
			if k == "alertname" {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(a.Labels[k]))
		}
		b.WriteString("}")
		for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
			fmt.Fprintf(&b, " %s=%s", k, strconv.Quote(a.Annotations[k]))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(s.w, b.String())
	return err
}
