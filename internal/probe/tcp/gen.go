package tcp

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type tcp_event -type vigil_proc -type sock_info -type agg_key -type agg_val -type if_key -type if_val -type cg_val tcp tcp.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
