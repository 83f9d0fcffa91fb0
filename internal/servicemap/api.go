package servicemap

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/vigilproject/vigil/internal/event"
)

// Run feeds the map from sub (subscribed to Kinds) and flushes it every
// second until ctx is done or sub is closed.
func (m *Map) Run(ctx context.Context, sub *event.Subscription) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			m.Add(ev, time.Now())
		case now := <-t.C:
			m.Flush(now)
		}
	}
}

// ParseQuery reads ?protocol= (http or tcp) and ?window= (a Go duration of
// at least 1s and at most MaxWindow; empty: since first seen).
func ParseQuery(protocol, window string) (Query, error) {
	var q Query
	switch protocol {
	case "", ProtoHTTP, ProtoTCP:
		q.Protocol = protocol
	default:
		return q, fmt.Errorf("protocol %q: must be http or tcp", protocol)
	}
	if window != "" {
		d, err := time.ParseDuration(window)
		if err != nil {
			return q, fmt.Errorf("window %q: %v", window, err)
		}
		if d < time.Second || d > MaxWindow {
			return q, fmt.Errorf("window %s: must be between 1s and %s", d, MaxWindow)
		}
		q.Window = d
	}
	return q, nil
}

// Handler serves GET /api/v1/servicemap[?protocol=http|tcp][&window=5m].
func (m *Map) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseQuery(r.URL.Query().Get("protocol"), r.URL.Query().Get("window"))
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m.Snapshot(time.Now(), q))
	})
}
