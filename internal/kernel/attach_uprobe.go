package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Uprobes: Binary is the executable or shared library, Target the function
// symbol (ELF .symtab or .dynsym) and Offset an offset into it; with an
// empty Target, Offset is the file offset of the instruction. PID limits the
// probe to one process; 0 covers every process, current and future, that
// maps the binary's inode.
//
// vigil attaches uprobes only, never uretprobes: a uretprobe rewrites the
// return address on the stack, which Go's stack growth and traceback do not
// expect, and crashes Go programs. Function returns in Go binaries are
// probed with uprobes on the RET instructions' offsets instead.
//
// Go binaries keep their function symbols unless built with -ldflags=-s
// (or stripped afterwards); a stripped binary has no .symtab, so symbol
// lookup fails and only offset-based attach works (the offsets can be
// derived from .gopclntab, which stripping keeps).
func init() { registerAttacher(Uprobe, attachUprobe) }

func attachUprobe(p *ebpf.Program, _ *ebpf.ProgramSpec, h Hook) ([]io.Closer, string, error) {
	l, err := uprobe(p, h.Binary, h.Target, h.Offset, h.PID)
	if err != nil {
		return nil, "", err
	}
	detail := "binary " + h.Binary
	if h.PID != 0 {
		detail += fmt.Sprintf(", pid %d", h.PID)
	}
	return []io.Closer{l}, detail, nil
}

// uprobe places p on binary at symbol+offset, or at the file offset when
// symbol is empty, with an error that names the binary and symbol.
func uprobe(p *ebpf.Program, binary, symbol string, offset uint64, pid int) (link.Link, error) {
	if binary == "" {
		return nil, errors.New("uprobe: no binary given")
	}
	if symbol == "" && offset == 0 {
		return nil, fmt.Errorf("uprobe %s: neither a symbol nor an offset given", binary)
	}
	ex, err := link.OpenExecutable(binary)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("uprobe: binary %s does not exist", binary)
		}
		return nil, fmt.Errorf("uprobe: opening %s: %w", binary, err)
	}
	opts := &link.UprobeOptions{PID: pid, Offset: offset}
	if symbol == "" {
		opts = &link.UprobeOptions{PID: pid, Address: offset}
	}
	l, err := ex.Uprobe(symbol, p, opts)
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, link.ErrNoSymbol):
		return nil, fmt.Errorf("uprobe: binary %s has no symbol %q (a stripped binary keeps no .symtab: attach by offset instead)", binary, symbol)
	case symbol == "":
		return nil, fmt.Errorf("uprobe %s at offset %#x: %w", binary, offset, err)
	default:
		return nil, fmt.Errorf("uprobe %s:%s: %w", binary, symbol, err)
	}
}
