package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildVigil builds the binary once per test run.
func buildVigil(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end: needs root to load BPF programs")
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startCmd runs the binary and returns a channel of its stdout lines.
func startCmd(t *testing.T, bin string, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// `vigil trace tcp -o json --port P` prints the close of a connection with
// the bytes the test sent, and a refused connect, and nothing for other ports.
func TestTraceTCPJSON(t *testing.T) {
	bin := buildVigil(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	lines := startCmd(t, bin, "trace", "tcp", "-o", "json", "--port", strconv.Itoa(port), "--pid", strconv.Itoa(os.Getpid()))
	time.Sleep(3 * time.Second) // attach

	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 77777)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Closing the listener before the server took the connection would
	// reset it with data still unacknowledged.
	<-served
	ln.Close()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}

	var sawClose, sawRefused bool
	deadline := time.After(10 * time.Second)
	for !sawClose || !sawRefused {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("vigil trace tcp exited")
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			if int(e["dport"].(float64)) != port && int(e["sport"].(float64)) != port {
				t.Errorf("--port %d let through %s", port, l)
			}
			switch {
			case e["kind"] == "close" && e["direction"] == "outbound":
				sawClose = true
				if e["bytes_sent"].(float64) != 77777 || int(e["pid"].(float64)) != os.Getpid() {
					t.Errorf("close: %s, want bytes_sent 77777 pid %d", l, os.Getpid())
				}
				for _, k := range []string{"saddr", "daddr", "sport", "dport", "bytes_received", "retransmits", "srtt_us", "duration_ms"} {
					if _, ok := e[k]; !ok {
						t.Errorf("close event has no %q: %s", k, l)
					}
				}
			case e["kind"] == "connect" && e["error"] == "ECONNREFUSED":
				sawRefused = true
			}
		case <-deadline:
			t.Fatalf("timed out: close seen %v, refused connect seen %v", sawClose, sawRefused)
		}
	}
}

// `vigil top tcp --count N` lists an open connection with its owner.
func TestTopTCP(t *testing.T) {
	bin := buildVigil(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	lines := startCmd(t, bin, "top", "tcp", "--count", "8", "--interval", "500ms", "--port", strconv.Itoa(port))
	time.Sleep(3 * time.Second)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep data flowing so the sampled counters move
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}
	}()
	want := strconv.Itoa(os.Getpid())
	for l := range lines {
		f := strings.Fields(l)
		if len(f) > 4 && f[0] == want && f[2] == "out" && strings.HasSuffix(f[4], ":"+strconv.Itoa(port)) {
			return
		}
	}
	t.Fatalf("vigil top tcp never listed pid %s's connection to port %d", want, port)
}
