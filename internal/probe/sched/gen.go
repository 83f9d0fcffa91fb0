package sched

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type cg_val -type thread_val -type thread_state sched sched.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
