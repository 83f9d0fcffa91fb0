package process

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type exec_head -type exit_event -type fork_event -type vigil_proc process process.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
