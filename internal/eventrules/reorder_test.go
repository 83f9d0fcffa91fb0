package eventrules

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestReorderBufOrder: events come out in time order, ties in arrival
// order, whatever order they went in.
func TestReorderBufOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 100 {
		var buf reorderBuf
		type in struct {
			at  time.Duration
			pid uint32
		}
		var want []in
		n := 1 + r.IntN(300)
		for i := range n {
			x := in{at: time.Duration(r.IntN(20)) * time.Millisecond, pid: uint32(i)}
			want = append(want, x)
			buf.push(execEv(x.pid, x.at, "/x"))
		}
		slices.SortStableFunc(want, func(a, b in) int { return int(a.at - b.at) })
		for i, w := range want {
			ev := buf.pop()
			if h := ev.EventHeader(); h.PID != w.pid || !h.Time.Equal(t0.Add(w.at)) {
				t.Fatalf("pop %d: pid %d at %v, want pid %d at %v", i, h.PID, h.Time.Sub(t0), w.pid, w.at)
			}
		}
		if buf.Len() != 0 {
			t.Fatalf("%d left", buf.Len())
		}
	}
}
