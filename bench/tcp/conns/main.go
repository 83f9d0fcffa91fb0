// Command conns opens many concurrent TCP connections on loopback and holds
// them open, for measuring the agent's memory with a full socket table.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10000, "connections to open")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	hold := flag.Duration("hold", 30*time.Second, "how long to keep them open")
	flag.Parse()

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(2*(*n)+100) {
		lim.Cur = uint64(2*(*n) + 100)
		if lim.Max < lim.Cur {
			lim.Max = lim.Cur
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "raising RLIMIT_NOFILE:", err)
			os.Exit(1)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	accepted := make(chan net.Conn, *n)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
			accepted <- c
		}
	}()
	conns := make([]net.Conn, 0, 2*(*n))
	start := time.Now()
	for i := 0; i < *n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fmt.Fprintf(os.Stderr, "dial %d: %v\n", i, err)
			os.Exit(1)
		}
		_, _ = c.Write([]byte("x"))
		conns = append(conns, c)
	}
	for i := 0; i < *n; i++ {
		conns = append(conns, <-accepted)
	}
	fmt.Printf("open %d connections (%d sockets) in %s\n", *n, len(conns), time.Since(start).Round(time.Millisecond))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-time.After(*hold):
	case <-sig:
	}
	for _, c := range conns {
		c.Close()
	}
}
