package l7

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNginxKernel: curl asks Debian's nginx for a page; the request bytes
// appear on nginx's accept side as reads, the response head as writes.
func TestNginxKernel(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if nginx, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Skip("skipped: nginx not installed (apt-get install nginx-light)")
		}
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("skipped: curl not installed")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	page := strings.Repeat("vigil l7 page\n", 10)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	sendfile off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server { listen 127.0.0.1:%[2]d; root %[1]s; }
}
`, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	up := false
	for i := 0; i < 100 && !up; i++ {
		if c, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
			c.Close()
			up = true
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !up {
		t.Fatal("nginx did not listen")
	}

	cfg := DefaultConfig()
	cfg.PIDs = []uint32{uint32(cmd.Process.Pid)}
	_, s := startProbe(t, cfg)
	out, err := exec.Command(curl, "-sS", "-H", "X-Test: l7", "http://"+ln.Addr().String()+"/index.html").Output()
	if err != nil || string(out) != page {
		t.Fatalf("curl: %v, %q", err, out)
	}
	evs := waitEvents(t, s, "nginx request and response", func(evs []*ConnData) bool {
		var r, w bool
		for _, e := range evs {
			r = r || e.Direction == "read"
			w = w || e.Direction == "write"
		}
		return r && w
	})
	var req, resp []byte
	var respLen uint64
	for _, e := range evs {
		if e.PID != uint32(cmd.Process.Pid) || e.Role != "server" || e.SPort != uint16(port) || e.DAddr != "127.0.0.1" {
			t.Fatalf("event %+v from pid %d port %d, want nginx (%d) serving port %d", e.Conn, e.PID, e.SPort, cmd.Process.Pid, port)
		}
		if e.Direction == "read" {
			req = append(req, e.Data...)
		} else {
			resp = append(resp, e.Data...)
			respLen += e.Length
		}
	}
	wantReq := "GET /index.html HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\n"
	if !bytes.HasPrefix(req, []byte(wantReq)) || !bytes.Contains(req, []byte("\r\nX-Test: l7\r\n")) || !bytes.HasSuffix(req, []byte("\r\n\r\n")) {
		t.Errorf("request as nginx read it: %q", req)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.Contains(resp, []byte("Content-Length: "+strconv.Itoa(len(page))+"\r\n")) {
		t.Errorf("response as nginx wrote it: %q", resp)
	}
	// Captures stop at max_capture_bytes; the true lengths cover head and page.
	if head := bytes.Index(resp, []byte("\r\n\r\n")); head < 0 || respLen != uint64(head+4+len(page)) {
		t.Errorf("nginx wrote %d bytes, want head + %d-byte page", respLen, len(page))
	}
}
