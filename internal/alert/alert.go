package alert

import (
	"hash/fnv"
	"maps"
	"slices"
	"time"
)

// Alert is one alert instance as delivered to receivers. The JSON shape is
// the Alertmanager API v2 "postableAlert".
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Fingerprint identifies an alert by its label set.
type Fingerprint uint64

// Fingerprint hashes the sorted label pairs. Separator bytes that cannot occur
// in UTF-8 text keep ("a","bc") and ("ab","c") apart.
func (a Alert) Fingerprint() Fingerprint {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(a.Labels[k]))
		h.Write([]byte{0xfe})
	}
	return Fingerprint(h.Sum64())
}

// Name returns the alertname label.
func (a Alert) Name() string { return a.Labels["alertname"] }

// Resolved reports whether the alert has ended at time now.
func (a Alert) Resolved(now time.Time) bool {
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}

// sameContent reports whether b would look the same to a receiver as a,
// ignoring EndsAt while both are firing (EndsAt of a firing alert only moves
// forward with every evaluation and is not news).
func (a Alert) sameContent(b Alert, now time.Time) bool {
	if a.Resolved(now) != b.Resolved(now) {
		return false
	}
	if a.Resolved(now) && !a.EndsAt.Equal(b.EndsAt) {
		return false
	}
	return a.StartsAt.Equal(b.StartsAt) && maps.Equal(a.Labels, b.Labels) &&
		maps.Equal(a.Annotations, b.Annotations) && a.GeneratorURL == b.GeneratorURL
}

// clone returns a deep copy so that callers can reuse their maps.
func (a Alert) clone() Alert {
	a.Labels = maps.Clone(a.Labels)
	a.Annotations = maps.Clone(a.Annotations)
	return a
}
