package httpflow_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/l7/httpflow"

	"github.com/vigilproject/vigil/internal/testutil"
)

// goProgram serves ("serve ADDR") or asks ("get BASE"): three requests on
// one keep-alive connection, a GET with an id in the path, a POST with a
// 1000-byte body and a GET answered 500.
const goProgram = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	switch os.Args[1] {
	case "serve":
		http.HandleFunc("/users/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "user") })
		http.HandleFunc("/items", func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintln(w, n)
		})
		http.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
		if err := http.ListenAndServe(os.Args[2], nil); err != nil {
			panic(err)
		}
	case "get":
		base := os.Args[2]
		do := func(req *http.Request) {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				panic(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fmt.Println(resp.StatusCode)
		}
		req, _ := http.NewRequest("GET", base+"/users/42?x=1", nil)
		do(req)
		req, _ = http.NewRequest("POST", base+"/items", strings.NewReader(strings.Repeat("b", 1000)))
		do(req)
		req, _ = http.NewRequest("GET", base+"/fail", nil)
		do(req)
	}
}
`

// buildGo builds goProgram with the named toolchain (empty: the current
// one) and linker flags.
func buildGo(t *testing.T, toolchain string, ldflags string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(goProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module vigiltest\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(dir, "gohttp")
	args := []string{"build", "-o", bin}
	if ldflags != "" {
		args = append(args, "-ldflags="+ldflags)
	}
	cmd := exec.Command(goBin, append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if toolchain != "" {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+toolchain)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		if toolchain != "" {
			t.Skipf("skipped: building with %s: %v\n%s", toolchain, err, out)
		}
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// A Go net/http server and client, built with two Go versions and
// stripped: both sides seen with the right method, status, route and sizes.
func TestGoNetHTTP(t *testing.T) {
	testutil.RequireBPF(t)
	builds := []struct{ name, toolchain, ldflags string }{
		{"current", "", ""},
		{"go1.22.12", "go1.22.12", ""},
		{"stripped", "", "-s -w"},
	}
	bins := make([]string, len(builds))
	for i, b := range builds {
		bins[i] = buildGo(t, b.toolchain, b.ldflags)
	}
	r := startAgent(t, false)
	for i, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			addr := testutil.FreeAddr(t)
			srv := exec.Command(bins[i], "serve", addr)
			startProcess(t, srv)
			listenAddr(t, addr)
			out, err := exec.Command(bins[i], "get", "http://"+addr).Output()
			if err != nil || strings.Join(strings.Fields(string(out)), " ") != "200 201 500" {
				t.Fatalf("client: %v %q", err, out)
			}
			server := r.waitEvents(3, srv.Process.Pid)
			// The client has exited; its events are those from its end of
			// the server's connection.
			clientOf := func() []*httpflow.Exchange {
				var out []*httpflow.Exchange
				for _, e := range r.events() {
					if e.Side == "client" && e.Comm == "gohttp" && e.LocalPort == server[0].RemotePort {
						out = append(out, e)
					}
				}
				return out
			}
			testutil.WaitFor(30*time.Second, func() bool { return len(clientOf()) >= 3 })
			time.Sleep(200 * time.Millisecond)
			client := clientOf()
			if s, _ := bySide(server); len(s) != 3 || len(client) != 3 {
				t.Fatalf("server %d, client %d events, want 3 and 3:\n%s%s", len(s), len(client), dump(server), dump(client))
			}
			want := []struct {
				method, path, route string
				status              int
				reqBody             int64
			}{
				{"GET", "/users/42", "/users/{id}", 200, 0},
				{"POST", "/items", "/items", 201, 1000},
				{"GET", "/fail", "/fail", 500, 0},
			}
			for _, side := range [][]*httpflow.Exchange{server, client} {
				for j, w := range want {
					e := side[j]
					if e.Method != w.method || e.Path != w.path || e.Route != w.route || e.Status != w.status || e.RequestBody != w.reqBody ||
						e.Version != "HTTP/1.1" || e.Host != addr || e.Truncated || e.DurationNS == 0 {
						t.Errorf("%s event %d: %+v\nwant %+v", e.Side, j, e, w)
					}
				}
			}
			// One keep-alive connection, seen from both ends.
			if server[0].Conn.Generation != server[2].Conn.Generation || client[0].Conn.Generation != client[2].Conn.Generation {
				t.Errorf("server conns %+v %+v, client conns %+v %+v", server[0].Conn, server[2].Conn, client[0].Conn, client[2].Conn)
			}
		})
	}
}
