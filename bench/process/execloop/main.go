// Command execloop is the tightest exec workload in Go: each worker
// fork+execs a program (vfork-style clone, as os/exec does) and reaps it,
// until the duration is over, then the total number of execs is printed.
//
//	execloop -workers 2 -duration 10s /bin/true
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	workers := flag.Int("workers", 2, "parallel exec loops (one per core)")
	duration := flag.Duration("duration", 10*time.Second, "how long to run")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: execloop [-workers N] [-duration D] PROGRAM [ARGS...]")
		os.Exit(2)
	}
	argv := flag.Args()
	var n, failed atomic.Int64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				pid, err := syscall.ForkExec(argv[0], argv, nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, 0, nil)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println(n.Load())
	if failed.Load() > 0 {
		fmt.Fprintf(os.Stderr, "%d execs failed\n", failed.Load())
		os.Exit(1)
	}
}
