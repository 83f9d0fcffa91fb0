package testutil

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// BPFProg is one loaded program as `bpftool prog show -j` lists it.
type BPFProg struct {
	ID   uint32 `json:"id"`
	Type string `json:"type"`
	Name string `json:"name"`
}

// BPFToolPrograms lists every BPF program loaded in the kernel through
// `bpftool prog show -j`. It fails when bpftool is missing.
func BPFToolPrograms() ([]BPFProg, error) {
	path, err := exec.LookPath("bpftool")
	if err != nil {
		return nil, fmt.Errorf("bpftool not installed (Debian package bpftool): %w", err)
	}
	out, err := exec.Command(path, "prog", "show", "-j").Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", err)
	}
	var progs []BPFProg
	if err := json.Unmarshal(out, &progs); err != nil {
		return nil, fmt.Errorf("bpftool prog show -j: %w", err)
	}
	return progs, nil
}

// ProgramIDsOf returns the ids of the BPF programs process pid holds open,
// directly (a program fd) or through a BPF link fd, read from
// /proc/<pid>/fdinfo. Attached programs of a live agent all show up here,
// which attributes them exactly even when other BPF users are running.
func ProgramIDsOf(pid int) (map[uint32]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	ids := map[uint32]bool{}
	for _, e := range ents {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil || (link != "anon_inode:bpf-prog" && link != "anon_inode:bpf_link") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok || strings.TrimSpace(k) != "prog_id" {
				continue
			}
			if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				ids[uint32(id)] = true
			}
		}
		f.Close()
	}
	return ids, nil
}

// HeldPrograms returns the ids of the programs any live process holds
// open: programs that are not orphaned.
func HeldPrograms() map[uint32]bool {
	held := map[uint32]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ids, _ := ProgramIDsOf(pid)
		for id := range ids {
			held[id] = true
		}
	}
	return held
}

// IsVigilProgramName reports whether a kernel program name (the ELF name cut
// to 15 characters) follows vigil's naming: the hook kind first, as in
// tp_btf_exec, raw_tp_exit, tp_enter_execve.
func IsVigilProgramName(name string) bool {
	for _, p := range []string{"tp_", "raw_tp_", "kprobe_", "fentry_", "uprobe_", "cgroup_skb_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
