// Command gotarget is the Go target of the uprobe tests: it calls
// main.vigilTarget as many times as its argument says.
package main

import (
	"os"
	"strconv"
)

var sink int

//go:noinline
func vigilTarget(x int) int { return x + 1 }

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	for i := 0; i < n; i++ {
		sink += vigilTarget(i)
	}
}
