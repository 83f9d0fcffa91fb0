package syscalls

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type stat_key -type stat_val -type errno_key syscalls syscalls.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
