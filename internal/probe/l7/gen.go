package l7

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type conn_data -type conn_key -type conn_info -type vigil_proc l7 l7.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
