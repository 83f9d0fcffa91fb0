// Command conns opens many concurrent TCP connections on loopback and holds
// them open, for measuring the agent's memory with a full socket table. The
// accepting side runs in a child process so each side needs only n file
// descriptors.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10000, "connections to open")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	hold := flag.Duration("hold", 30*time.Second, "how long to keep them open")
	server := flag.Bool("server", false, "run the accepting side (used internally)")
	flag.Parse()
	raiseNofile(*n + 100)
	if *server {
		serve(*addr, *n, *hold)
		return
	}

	child := exec.Command(os.Args[0], "-server", "-n", strconv.Itoa(*n), "-addr", *addr, "-hold", (*hold + 10*time.Second).String())
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := child.Start(); err != nil {
		fail(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	if err != nil {
		fail(fmt.Errorf("server did not start: %w", err))
	}
	target := line[:len(line)-1]

	conns := make([]net.Conn, 0, *n)
	start := time.Now()
	for i := 0; i < *n; i++ {
		c, err := net.Dial("tcp", target)
		if err != nil {
			fail(fmt.Errorf("dial %d: %w", i, err))
		}
		_, _ = c.Write([]byte("x"))
		conns = append(conns, c)
	}
	if _, err := rd.ReadString('\n'); err != nil { // "accepted"
		fail(fmt.Errorf("server: %w", err))
	}
	fmt.Printf("open %d connections (%d sockets, two processes) in %s\n", *n, 2**n, time.Since(start).Round(time.Millisecond))
	wait(*hold)
	for _, c := range conns {
		c.Close()
	}
}

func serve(addr string, n int, hold time.Duration) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err)
	}
	fmt.Println(ln.Addr().String())
	conns := make([]net.Conn, 0, n)
	for len(conns) < n {
		c, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		go func() { _, _ = io.Copy(io.Discard, c) }()
		conns = append(conns, c)
	}
	fmt.Println("accepted")
	wait(hold)
}

func wait(hold time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-time.After(hold):
	case <-sig:
	}
}

func raiseNofile(want int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= uint64(want) {
		return
	}
	lim.Cur = min(uint64(want), lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < uint64(want) {
		fail(fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the %d descriptors needed", lim.Max, want))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "conns:", err)
	os.Exit(1)
}
