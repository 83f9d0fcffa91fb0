// Package syscalls names x86_64 Linux system calls by number. The table is
// generated from the kernel's uapi header (see mktable.go).
package syscalls

import "strconv"

//go:generate go run mktable.go -in /usr/include/x86_64-linux-gnu/asm/unistd_64.h -extra-module golang.org/x/sys -out table_x86_64.go

// Max is one past the highest syscall number in the table.
const Max = len(x86_64)

var byName = func() map[string]int {
	m := make(map[string]int, len(x86_64))
	for nr, n := range x86_64 {
		if n != "" {
			m[n] = nr
		}
	}
	return m
}()

// Name returns the syscall's name, or "syscall_<nr>" for a number the table
// does not know (a newer kernel, or a 32-bit compat call).
func Name(nr int) string {
	if nr >= 0 && nr < len(x86_64) && x86_64[nr] != "" {
		return x86_64[nr]
	}
	return "syscall_" + strconv.Itoa(nr)
}

// Number returns the number of the named syscall.
func Number(name string) (int, bool) {
	nr, ok := byName[name]
	return nr, ok
}
