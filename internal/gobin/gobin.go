// Package gobin reads what uprobes on Go programs need from a Go executable:
// whether it is one and its Go version, function addresses from .gopclntab
// (kept by -ldflags=-s -w, unlike .symtab), the file offsets of virtual
// addresses, the RET instructions of a function (amd64) and the address of an
// interface table (itab). It only reads the file; nothing is executed.
package gobin

import (
	"bytes"
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// ErrNotGo is returned (wrapped) by Open for a file that is not a Go executable.
var ErrNotGo = errors.New("not a Go executable")

// Binary is an open Go executable.
type Binary struct {
	Path string
	// GoVersion is the toolchain that built it, e.g. "go1.22.12".
	GoVersion string

	file  *os.File
	elf   *elf.File
	table *gosym.Table
	// relative holds, for a position-independent executable, the words
	// the dynamic loader fills in (R_X86_64_RELATIVE: address -> value
	// before the load bias); the file has zeros there.
	relative map[uint64]uint64
}

// Func is one function of the binary, by virtual address: [Entry, End).
type Func struct {
	Name       string
	Entry, End uint64
}

// Open opens path and reads its build information and function table. An
// ELF file without Go build information is ErrNotGo.
func Open(path string) (*Binary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func open(path string, f *os.File) (*Binary, error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not an ELF file: %w", path, err)
	}
	info, err := buildinfo.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", path, ErrNotGo, err)
	}
	b := &Binary{Path: path, GoVersion: info.GoVersion, file: f, elf: ef}
	pcln := ef.Section(".gopclntab")
	if pcln == nil {
		return nil, fmt.Errorf("%s: %s has no .gopclntab section", path, info.GoVersion)
	}
	text := ef.Section(".text")
	if text == nil {
		return nil, fmt.Errorf("%s: no .text section", path)
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: reading .gopclntab: %w", path, err)
	}
	if ef.Type == elf.ET_DYN && ef.Machine == elf.EM_X86_64 {
		if b.relative, err = relativeRelocs(ef); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	// Function entries are relative to runtime.text, which is where .text
	// starts only when Go linked the binary itself: an externally linked
	// (cgo) binary has C code first. Go 1.18+ tables record it.
	textStart := text.Addr
	if len(data) >= 32 && pclnTextStartMagic[binary.LittleEndian.Uint32(data)] {
		if w, err := b.word(pcln.Addr + 24); err == nil && w != 0 {
			textStart = w
		} else if w, ok := b.moduleMinPC(pcln.Addr); ok && w >= text.Addr && w < text.Addr+text.Size {
			textStart = w // the C linker left the header's copy at zero
		}
	}
	b.table, err = gosym.NewTable(nil, gosym.NewLineTable(data, textStart))
	if err != nil {
		return nil, fmt.Errorf("%s: parsing .gopclntab: %w", path, err)
	}
	return b, nil
}

// moduledataMinPC is the offset of runtime.moduledata.minpc (runtime.text)
// in Go 1.16 to 1.26: after pcHeader, six slices and findfunctab.
const moduledataMinPC = 8 + 6*24 + 8

// moduleMinPC finds runtime.firstmoduledata, the word in .go.module (Go
// 1.26), .noptrdata or .data (older releases linked by the C linker) that
// points at the pclntab header, and returns its minpc.
func (b *Binary) moduleMinPC(pcHeader uint64) (uint64, bool) {
	for _, name := range []string{".go.module", ".noptrdata", ".data"} {
		sec := b.elf.Section(name)
		if sec == nil || sec.Type != elf.SHT_PROGBITS {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			continue
		}
		for i := 0; i+moduledataMinPC+8 <= len(data); i += 8 {
			if binary.LittleEndian.Uint64(data[i:]) == pcHeader {
				return binary.LittleEndian.Uint64(data[i+moduledataMinPC:]), true
			}
		}
	}
	return 0, false
}

// pclnTextStartMagic are the .gopclntab magics (Go 1.18, Go 1.20 and
// later) whose header holds runtime.text's address at byte 24.
var pclnTextStartMagic = map[uint32]bool{0xfffffff0: true, 0xfffffff1: true}

// relativeRelocs reads the R_X86_64_RELATIVE relocations of a
// position-independent executable.
func relativeRelocs(ef *elf.File) (map[uint64]uint64, error) {
	rel := map[uint64]uint64{}
	for _, sec := range ef.Sections {
		if sec.Type != elf.SHT_RELA || sec.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", sec.Name, err)
		}
		for i := 0; i+24 <= len(data); i += 24 {
			off := binary.LittleEndian.Uint64(data[i:])
			info := binary.LittleEndian.Uint64(data[i+8:])
			if elf.R_X86_64(info&0xffffffff) == elf.R_X86_64_RELATIVE {
				rel[off] = binary.LittleEndian.Uint64(data[i+16:])
			}
		}
	}
	return rel, nil
}

// word reads the pointer-sized word at vaddr as the program sees it once
// loaded (before the load bias of a position-independent executable).
func (b *Binary) word(vaddr uint64) (uint64, error) {
	if v, ok := b.relative[vaddr]; ok {
		return v, nil
	}
	w, err := b.read(vaddr, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(w), nil
}

// Close closes the file.
func (b *Binary) Close() error { return b.file.Close() }

// Arch is the ELF machine, e.g. "EM_X86_64".
func (b *Binary) Arch() elf.Machine { return b.elf.Machine }

// AtLeast reports whether the binary was built by Go major.minor or later
// (a development toolchain "devel ..." counts as the latest).
func (b *Binary) AtLeast(major, minor int) bool {
	v, ok := strings.CutPrefix(b.GoVersion, "go")
	if !ok {
		return strings.HasPrefix(b.GoVersion, "devel")
	}
	parts := strings.SplitN(v, ".", 3)
	maj, err1 := strconv.Atoi(parts[0])
	min := 0
	var err2 error
	if len(parts) > 1 {
		// "22rc1" or "22" or "22-..."
		m := parts[1]
		if i := strings.IndexFunc(m, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			m = m[:i]
		}
		min, err2 = strconv.Atoi(m)
	}
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}

// Func finds a function by its full name, e.g. "crypto/tls.(*Conn).Read".
func (b *Binary) Func(name string) (Func, error) {
	fn := b.table.LookupFunc(name)
	if fn == nil {
		return Func{}, fmt.Errorf("%s: no function %s in .gopclntab", b.Path, name)
	}
	return Func{Name: name, Entry: fn.Entry, End: fn.End}, nil
}

// FileOffset converts a virtual address to an offset in the file, through
// the loadable segment that maps it.
func (b *Binary) FileOffset(vaddr uint64) (uint64, error) {
	for _, p := range b.elf.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
			return vaddr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("%s: address %#x is in no loadable segment of the file", b.Path, vaddr)
}

// read reads n bytes of the file image at virtual address vaddr.
func (b *Binary) read(vaddr uint64, n int) ([]byte, error) {
	off, err := b.FileOffset(vaddr)
	if err != nil {
		return nil, err
	}
	end, err := b.FileOffset(vaddr + uint64(n) - 1)
	if err != nil || end != off+uint64(n)-1 {
		return nil, fmt.Errorf("%s: %d bytes at %#x cross the end of a segment", b.Path, n, vaddr)
	}
	buf := make([]byte, n)
	if _, err := b.file.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("%s: reading %d bytes at %#x: %w", b.Path, n, vaddr, err)
	}
	return buf, nil
}

// maxFuncSize bounds the code Returns disassembles.
const maxFuncSize = 1 << 20

// Returns lists the virtual addresses of fn's RET instructions, by decoding
// it instruction by instruction from its entry (amd64 only). An instruction
// that cannot be decoded is an error: guessing past it could place a probe
// inside an instruction, which would corrupt the program.
func (b *Binary) Returns(fn Func) ([]uint64, error) {
	if b.elf.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s: RET instructions of %s: the binary is %s; only x86-64 is supported", b.Path, fn.Name, b.elf.Machine)
	}
	if fn.End <= fn.Entry || fn.End-fn.Entry > maxFuncSize {
		return nil, fmt.Errorf("%s: %s has an implausible size (%#x-%#x)", b.Path, fn.Name, fn.Entry, fn.End)
	}
	code, err := b.read(fn.Entry, int(fn.End-fn.Entry))
	if err != nil {
		return nil, err
	}
	var rets []uint64
	for pc := 0; pc < len(code); {
		// The linker pads between functions with INT3; padding is not code.
		if isPadding(code[pc:]) {
			break
		}
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: cannot decode the instruction at %#x: %w", b.Path, fn.Name, fn.Entry+uint64(pc), err)
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, fn.Entry+uint64(pc))
		}
		pc += inst.Len
	}
	if len(rets) == 0 {
		return nil, fmt.Errorf("%s: %s has no RET instruction", b.Path, fn.Name)
	}
	return rets, nil
}

// isPadding reports whether code is all INT3 (the linker's fill to the next function).
func isPadding(code []byte) bool {
	return len(bytes.TrimLeft(code, "\xcc")) == 0
}

// Itab layout (runtime.itab / internal/abi.ITab, unchanged from Go 1.10 to
// 1.26 on 64-bit): inter *interfacetype, _type *_type, hash uint32,
// 4 bytes of padding, then fun[]: the method addresses in the interface's
// (sorted) method order.
const itabFunOffset = 24

// Itab finds the address of the interface table whose methods are methods,
// in the interface's method order: e.g. for (*net.TCPConn, net.Conn)
// net.(*TCPConn).Close, "", net.(*TCPConn).Read, "" ... An empty name
// matches any address: the linker points the methods a program never calls
// at runtime.unreachableMethod and drops their code. Every itab of the
// binary is listed in .itablink, which stripping keeps, so no symbol is
// needed.
func (b *Binary) Itab(methods []string) (uint64, error) {
	want := make([]uint64, len(methods))
	for i, m := range methods {
		if m == "" {
			continue
		}
		fn, err := b.Func(m)
		if err != nil {
			return 0, err
		}
		want[i] = fn.Entry
	}
	links := b.elf.Section(".itablink")
	if links == nil {
		links = b.elf.Section(".data.rel.ro.itablink") // position-independent
	}
	if links == nil {
		return 0, fmt.Errorf("%s: no .itablink section", b.Path)
	}
	for a := links.Addr; a+8 <= links.Addr+links.Size; a += 8 {
		itab, err := b.word(a)
		if err != nil {
			return 0, err
		}
		match := true
		for j, w := range want {
			if methods[j] == "" {
				continue
			}
			if got, err := b.word(itab + itabFunOffset + 8*uint64(j)); err != nil || got != w {
				match = false
				break
			}
		}
		if match {
			return itab, nil
		}
	}
	return 0, fmt.Errorf("%s: no itab with methods %s", b.Path, strings.Join(methods, ","))
}

// FieldOffset is the byte offset of field in struct type typ (DWARF names,
// e.g. "crypto/tls.Conn", "conn"), from the binary's DWARF: only unstripped
// binaries have it. vigil's probes use fixed offsets; this checks them.
func (b *Binary) FieldOffset(typ, field string) (uint64, error) {
	d, err := b.elf.DWARF()
	if err != nil {
		return 0, fmt.Errorf("%s: no DWARF (stripped?): %w", b.Path, err)
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return 0, fmt.Errorf("%s: reading DWARF: %w", b.Path, err)
		}
		if e == nil {
			return 0, fmt.Errorf("%s: no struct type %s in DWARF", b.Path, typ)
		}
		if e.Tag != dwarf.TagStructType || e.Val(dwarf.AttrName) != typ {
			if e.Tag != dwarf.TagCompileUnit {
				r.SkipChildren()
			}
			continue
		}
		for e.Children {
			m, err := r.Next()
			if err != nil || m == nil || m.Tag == 0 {
				break
			}
			if m.Tag == dwarf.TagMember && m.Val(dwarf.AttrName) == field {
				if off, ok := m.Val(dwarf.AttrDataMemberLoc).(int64); ok {
					return uint64(off), nil
				}
				return 0, fmt.Errorf("%s: %s.%s has no constant offset", b.Path, typ, field)
			}
		}
		return 0, fmt.Errorf("%s: struct %s has no field %s", b.Path, typ, field)
	}
}
