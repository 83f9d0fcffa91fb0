package http

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Debian's nginx behind the recording proxy: static files, 301, 404, 500,
// HEAD, a 2 MB file, keep-alive. (Uploads are in the Go server test: nginx's
// "return" answers before reading a body, so its request size is racy.)
func TestRecordedNginx(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed (make test-deps)")
	}
	if os.Geteuid() != 0 {
		t.Skip("nginx in the foreground needs root here")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	os.MkdirAll(filepath.Join(root, "sub"), 0o755)
	os.WriteFile(filepath.Join(root, "one.html"), bytes.Repeat([]byte("n"), 1024), 0o644)
	os.WriteFile(filepath.Join(root, "sub", "index.html"), []byte("index"), 0o644)
	os.WriteFile(filepath.Join(root, "two.bin"), bytes.Repeat([]byte("t"), 2<<20), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		root %[3]s;
		location = /fail { return 500; }
	}
}
`, dir, addr, root)
	cf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(cf, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-c", cf, "-p", dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal("nginx did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec := newRecorder(t, addr)
	reqs := []seen{
		{method: "GET", path: "/one.html"}, {method: "GET", path: "/sub"}, {method: "GET", path: "/sub/"},
		{method: "GET", path: "/missing"}, {method: "GET", path: "/fail"}, {method: "HEAD", path: "/two.bin"},
		{method: "GET", path: "/two.bin"}, {method: "GET", path: "/one.html"},
	}
	client := doRequests(t, "http://"+rec.ln.Addr().String(), reqs)
	want := []int{200, 301, 200, 404, 500, 200, 200, 200}
	for i, c := range client {
		if c.status != want[i] {
			t.Fatalf("nginx answered %d to %s, the test expects %d", c.status, c.path, want[i])
		}
	}
	conns := rec.recorded()
	for _, capture := range []int{0, 256} {
		st := new(Stats)
		ex := feedRecorded(conns, capture, st)
		compareSeen(t, fmt.Sprintf("capture %d", capture), client, ex, RoleServer)
		if s := st.Snapshot(); s.LostSync != 0 || s.OrphanResponses != 0 || s.NotHTTP != 0 {
			t.Fatalf("capture %d: stats %+v", capture, s)
		}
	}
}
