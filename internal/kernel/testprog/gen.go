// Package testprog holds BPF programs used only by the kernel package's
// tests: a uprobe and a perf_event program that count hits per process.
package testprog

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 testprog testprog.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64

import "github.com/cilium/ebpf"

// Spec returns the test object: programs count_call (uprobe) and
// count_sample (perf_event), counting into the hash maps uprobe_hits and
// samples keyed by tgid, count_egress (cgroup_skb/egress) counting into
// egress_packets, and emit (uprobe), writing the tgid into the
// events ring buffer under the wakeup policy of vigil_ring.h.
func Spec() (*ebpf.CollectionSpec, error) { return loadTestprog() }
