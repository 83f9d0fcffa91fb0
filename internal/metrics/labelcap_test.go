package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLabelCapFoldsPastLimit(t *testing.T) {
	c := NewLabelCap("test_metric_total", "exe", 3)
	folded := Folded.WithLabelValues("test_metric_total", "exe")
	before := testutil.ToFloat64(folded)
	for _, v := range []string{"a", "b", "c"} {
		if got := c.Value(v); got != v {
			t.Fatalf("Value(%q) = %q, want it admitted", v, got)
		}
	}
	if got := c.Value("d"); got != Other {
		t.Fatalf("4th distinct value = %q, want %q", got, Other)
	}
	if got := c.Value("e"); got != Other {
		t.Fatalf("5th distinct value = %q, want %q", got, Other)
	}
	// Admitted values stay admitted: series never move to "other".
	if got := c.Value("a"); got != "a" {
		t.Fatalf("admitted value now %q", got)
	}
	if got := testutil.ToFloat64(folded) - before; got != 2 {
		t.Fatalf("folded counter moved by %v, want 2", got)
	}
}

func TestLabelCapConcurrent(t *testing.T) {
	c := NewLabelCap("test_concurrent_total", "v", 10)
	done := make(chan map[string]bool)
	for g := 0; g < 4; g++ {
		go func() {
			seen := map[string]bool{}
			for i := 0; i < 1000; i++ {
				seen[c.Value(fmt.Sprint(i%50))] = true
			}
			done <- seen
		}()
	}
	all := map[string]bool{}
	for g := 0; g < 4; g++ {
		for k := range <-done {
			all[k] = true
		}
	}
	if len(all) != 11 { // 10 admitted + "other"
		t.Fatalf("distinct outputs = %d (%v), want 11", len(all), all)
	}
}

func BenchmarkLabelCapHit(b *testing.B) {
	c := NewLabelCap("bench_total", "v", 100)
	c.Value("bash")
	for b.Loop() {
		c.Value("bash")
	}
}
