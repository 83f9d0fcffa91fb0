package kernel

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// onlineCPUsFile lists the CPUs the scheduler runs on ("0-3,6").
const onlineCPUsFile = "/sys/devices/system/cpu/online"

// OnlineCPUs returns the ids of the online CPUs. Ids may have gaps
// (offline or absent CPUs), so code must not assume 0..n-1.
func OnlineCPUs() ([]int, error) {
	data, err := os.ReadFile(onlineCPUsFile)
	if err != nil {
		return nil, fmt.Errorf("reading online CPUs: %w", err)
	}
	cpus, err := ParseCPUList(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", onlineCPUsFile, err)
	}
	return cpus, nil
}

// ParseCPUList parses the kernel's CPU list format ("0-3,6,8-9").
func ParseCPUList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad CPU list %q", s)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// SumPerCPU adds up the per-CPU values of a per-CPU map entry, as read with
// Map.Lookup into a []uint64.
func SumPerCPU(vals []uint64) uint64 {
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum
}

// ReadCounters fills out[i] with the sum over CPUs of element i of a
// per-CPU array of uint64 counters, for i < len(out). An element that
// cannot be read stays 0; the first such error is returned.
func ReadCounters(m *ebpf.Map, out []uint64) error {
	var first error
	for i := range out {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			if first == nil {
				first = fmt.Errorf("counter %d: %w", i, err)
			}
			continue
		}
		out[i] = SumPerCPU(per)
	}
	return first
}
