package kernel

import (
	"debug/elf"
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
// Never a uretprobe on a Go binary: a uretprobe rewrites the return
// address on the stack, which Go's stack growth and traceback do not
// expect, and crashes Go programs. Function returns in Go binaries are
// probed with uprobes on the RET instructions' offsets instead; uretprobe
// refuses a binary that carries Go's build info or runtime (IsGoBinary).
// C libraries (libssl) may take uretprobes.
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
	return uprobeAt(p, binary, symbol, offset, pid, false)
}

// uprobeAt is uprobe, or with ret a uretprobe (run when the function
// returns), which it refuses for Go binaries.
func uprobeAt(p *ebpf.Program, binary, symbol string, offset uint64, pid int, ret bool) (link.Link, error) {
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
	if ret {
		goBin, err := IsGoBinary(binary)
		if err != nil {
			return nil, fmt.Errorf("uretprobe %s: %w", binary, err)
		}
		if goBin {
			return nil, fmt.Errorf("uretprobe %s:%s refused: it is a Go binary, and a uretprobe corrupts Go stacks (probe its RET instructions with uprobes instead)", binary, symbol)
		}
	}
	opts := &link.UprobeOptions{PID: pid, Offset: offset}
	if symbol == "" {
		opts = &link.UprobeOptions{PID: pid, Address: offset}
	}
	attach := ex.Uprobe
	if ret {
		attach = ex.Uretprobe
	}
	l, err := attach(symbol, p, opts)
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

// IsGoBinary reports whether the ELF file at path was built by the Go
// toolchain: it has a .go.buildinfo or .gopclntab section (both survive
// -ldflags=-s), or a runtime.text symbol.
func IsGoBinary(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("reading ELF %s: %w", path, err)
	}
	defer f.Close()
	if f.Section(".go.buildinfo") != nil || f.Section(".gopclntab") != nil {
		return true, nil
	}
	syms, err := f.Symbols()
	if err != nil {
		return false, nil // no .symtab: not Go by any mark left
	}
	for _, s := range syms {
		if s.Name == "runtime.text" {
			return true, nil
		}
	}
	return false, nil
}
