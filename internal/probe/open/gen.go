package open

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type open_head -type vigil_proc -type count_key -type prefix open open.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
