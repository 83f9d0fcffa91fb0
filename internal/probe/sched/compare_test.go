package sched

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/bits"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runqlatLine is one histogram row of libbpf-tools runqlat: "4 -> 7 : 2024 |**|".
var runqlatLine = regexp.MustCompile(`^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)`)

// parseRunqlat reads runqlat's microsecond histogram into slots: the row
// "lo -> hi" is slot log2(hi+1)-1, the same layout the probe keeps.
func parseRunqlat(out []byte) ([HistSlots]uint64, error) {
	var h [HistSlots]uint64
	rows := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := runqlatLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		hi, _ := strconv.ParseUint(m[2], 10, 64)
		n, _ := strconv.ParseUint(m[3], 10, 64)
		s := bits.Len64(hi+1) - 2
		if s < 0 || s >= HistSlots {
			return h, fmt.Errorf("runqlat row %q: slot %d out of range", sc.Text(), s)
		}
		h[s] += n
		rows++
	}
	if rows == 0 {
		return h, fmt.Errorf("no histogram in runqlat output:\n%s", out)
	}
	return h, nil
}

func TestParseRunqlat(t *testing.T) {
	h, err := parseRunqlat([]byte("     usecs : count distribution\n  0 -> 1 : 91 |*|\n  2 -> 3 : 866 |*|\n  4 -> 7 : 2024 |**|\n 262144 -> 524287 : 5 | |\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h[0] != 91 || h[1] != 866 || h[2] != 2024 || h[18] != 5 || medianSlot(h[:]) != 2 {
		t.Errorf("parsed %v, median slot %d", h, medianSlot(h[:]))
	}
}

// Side by side with libbpf-tools runqlat on the same stress-ng --cpu 4
// workload over the same window: the medians fall in the same log2 slot or
// in neighbouring ones.
func TestRunqlatAgrees(t *testing.T) {
	p, _ := startProbe(t, DefaultConfig())
	runqlat, err := exec.LookPath("runqlat")
	if err != nil {
		t.Skip("skipped: runqlat not installed (Debian package libbpf-tools)")
	}
	if _, err := exec.LookPath("stress-ng"); err != nil {
		t.Skip("skipped: stress-ng not installed")
	}
	const window = 4
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stress := exec.CommandContext(ctx, "stress-ng", "--cpu", "4", "--timeout", strconv.Itoa(window+4)+"s", "--quiet")
	if err := stress.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stress.Process.Kill(); _ = stress.Wait() }()
	time.Sleep(time.Second) // workers up

	// Line-buffered, so that "Tracing", printed once attached, starts the
	// window at once rather than when runqlat exits.
	rq := exec.CommandContext(ctx, "stdbuf", "-oL", runqlat, strconv.Itoa(window), "1")
	stdout, err := rq.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rq.Start(); err != nil {
		t.Fatalf("stdbuf runqlat: %v", err)
	}
	rd := bufio.NewReader(stdout)
	first, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(first, "Tracing") {
		t.Fatalf("runqlat did not start: %q %v", first, err)
	}
	before, err := total(p)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := rq.Wait(); err != nil {
		t.Fatalf("runqlat: %v\n%s", err, rest)
	}
	after, err := total(p)
	if err != nil {
		t.Fatal(err)
	}
	ours := after.Sub(before)
	ref, err := parseRunqlat(rest)
	if err != nil {
		t.Fatal(err)
	}
	om, rm := ours.MedianSlot(), medianSlot(ref[:])
	t.Logf("vigil: %d waits, median slot %d (%s); runqlat: median slot %d\nvigil   %v\nrunqlat %v",
		ours.RunqCount, om, slotRange(om), rm, ours.RunqHist, ref)
	if om < 0 || rm < 0 || om-rm > 1 || rm-om > 1 {
		t.Errorf("median slots differ by more than one: vigil %d (%s), runqlat %d (%s)", om, slotRange(om), rm, slotRange(rm))
	}
}

// total sums every cgroup's aggregate.
func total(p *Probe) (Stats, error) {
	cgs, err := p.Cgroups()
	var s Stats
	for _, c := range cgs {
		s.Add(c.Stats)
	}
	return s, err
}

func slotRange(s int) string {
	if s < 0 {
		return "empty"
	}
	return fmt.Sprintf("%g-%g µs", SlotLowerBound(s)*1e6, SlotUpperBound(s)*1e6)
}
