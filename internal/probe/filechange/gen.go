package filechange

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type fc_head -type fc_event -type vigil_proc -type vigil_path_key filechange filechange.bpf.c -- -I../../../bpf/include -I../../../bpf/include/amd64
