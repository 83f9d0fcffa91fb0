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

// Python's http.server and a urllib client: server and client side of a
// 200, a 404 and a HEAD, plain HTTP.
func TestPythonHTTPServer(t *testing.T) {
	py := lookPath(t, "python3")
	dir := t.TempDir()
	page := strings.Repeat("python page\n", 100)
	if err := os.WriteFile(filepath.Join(dir, "page.txt"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	srv := exec.Command(py, "-m", "http.server", port, "--bind", "127.0.0.1", "--directory", dir)
	startProcess(t, srv)
	listenAddr(t, addr)
	r := startAgent(t, false)

	client := `import sys, urllib.request, urllib.error
base = sys.argv[1]
r = urllib.request.urlopen(base + "/page.txt?v=1")
r.read()
print(r.status)
try:
    urllib.request.urlopen(base + "/missing")
except urllib.error.HTTPError as e:
    e.read()
    print(e.code)
r = urllib.request.urlopen(urllib.request.Request(base + "/page.txt", method="HEAD"))
r.read()
print(r.status)
`
	cmd := exec.Command(py, "-c", client, "http://"+addr)
	out, err := cmd.Output()
	if err != nil || strings.Join(strings.Fields(string(out)), " ") != "200 404 200" {
		t.Fatalf("client: %v %q", err, out)
	}
	server := r.waitEvents(3, srv.Process.Pid)
	var cli []*httpflow.Exchange
	testutil.WaitFor(30*time.Second, func() bool {
		cli = nil
		for _, e := range r.events(cmd.Process.Pid) {
			if e.Side == "client" {
				cli = append(cli, e)
			}
		}
		return len(cli) >= 3
	})
	if len(cli) != 3 {
		t.Fatalf("client events:\n%s", dump(cli))
	}
	want := []struct {
		method, path string
		status       int
		body         int64
	}{{"GET", "/page.txt", 200, int64(len(page))}, {"GET", "/missing", 404, -1}, {"HEAD", "/page.txt", 200, 0}}
	for _, side := range [][]*httpflow.Exchange{server, cli} {
		for i, w := range want {
			e := side[i]
			if e.Method != w.method || e.Path != w.path || e.Status != w.status || (w.body >= 0 && e.ResponseBody != w.body) ||
				e.Truncated || e.Comm != "python3" || e.Service != "python3" {
				t.Errorf("%s event %d: %s", e.Side, i, dump([]*httpflow.Exchange{e}))
			}
		}
	}
	if server[0].Side != "server" || server[0].Version != "HTTP/1.1" || server[0].RemotePort != cli[0].LocalPort {
		t.Errorf("server %+v client %+v", server[0], cli[0])
	}
	r.noLoss()
}
