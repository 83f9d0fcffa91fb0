package config

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"
)

// When the key a probe's error starts with is not in the user's section (its
// value came from the defaults), the error points at the user's knob the
// message mentions, the other half of the combination; failing that, at the
// probe's own line. Never at a line of the embedded defaults.
func TestErrorLinePrefersTheUsersKnob(t *testing.T) {
	var doc yaml.Node
	file := "probes:\n  open:\n    events: true\n    ringbuf_size: 4096\n"
	if err := yaml.Unmarshal([]byte(file), &doc); err != nil {
		t.Fatal(err)
	}
	probes := doc.Content[0].Content[1]
	u := userSection{line: probes.Content[0].Line, node: probes.Content[1]}
	for msg, want := range map[string]int{
		"ringbuf_size: 4096 is too small":                                         4,
		"ringbuf_wakeup_bytes: 65536 must be below half of ringbuf_size (4096)":   4,
		"ringbuf_wakeup_bytes: 65536 must be below half of ringbuf_sizes (4096)":  2, // not the key: a longer word
		"max_args: 0 must be at least 1":                                          2,
		"events_extra: the word events alone names the events knob, not this one": 3,
	} {
		if got := u.errorLine(errors.New(msg)); got != want {
			t.Errorf("%q: line %d, want %d", msg, got, want)
		}
	}
}
