package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestClockTicks(t *testing.T) {
	// USER_HZ is 100 on every architecture Linux runs on today.
	if tickNS != 10_000_000 {
		t.Errorf("tickNS = %d, want 10ms", tickNS)
	}
}

func TestSameStart(t *testing.T) {
	const exact = 12_345_678_901 // ns
	fromProc := exact / tickNS * tickNS
	tests := []struct {
		a, b uint64
		want bool
	}{
		{exact, exact, true},
		{exact, fromProc, true},
		{fromProc, exact, true},
		{0, exact, true},
		{exact, 0, true},
		{exact, exact + tickNS, false},
		{fromProc, fromProc - 1, false},
	}
	for _, tt := range tests {
		if got := sameStart(tt.a, tt.b); got != tt.want {
			t.Errorf("sameStart(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       Process
		wantErr    bool
	}{
		{"plain", "1234 (bash) S 1000 1234 1234 34816 1234 4194304 1 2 3 4 5 6 7 8 20 0 1 0 98765 1 2 3",
			Process{PPID: 1000, Comm: "bash", StartNS: 98765 * tickNS}, false},
		{"comm with spaces and parens", "77 (my (weird) prog) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n",
			Process{PPID: 1, Comm: "my (weird) prog", StartNS: 5 * tickNS}, false},
		{"truncated", "77 (x) R 1 77 77", Process{}, true},
		{"no comm", "77 x R 1", Process{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Process
			err := parseStat([]byte(tt.line), &p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(p, tt.want) {
				t.Errorf("got %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestStatusID(t *testing.T) {
	status := []byte("Name:\tsshd\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\n")
	if got := statusID(status, "Uid:"); got != 1000 {
		t.Errorf("uid = %d, want 1000 (the real uid, not the effective one)", got)
	}
	if got := statusID(status, "Gid:"); got != 100 {
		t.Errorf("gid = %d, want 100", got)
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"sleep\x005\x00", []string{"sleep", "5"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"nginx: worker process", []string{"nginx: worker process"}}, // rewritten by setproctitle
	}
	for _, tt := range tests {
		if got := splitArgs([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeProc writes a /proc/<pid> directory under root.
type fakeProcess struct {
	pid, ppid  uint32
	comm       string
	startTicks uint64
	uid, gid   uint32
	exe        string
	args       []string
	cgroup     string
}

func writeFakeProc(t *testing.T, root string, fp fakeProcess) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(int(fp.pid)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := strconv.Itoa(int(fp.pid)) + " (" + fp.comm + ") S " + strconv.Itoa(int(fp.ppid)) +
		" 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 " + strconv.FormatUint(fp.startTicks, 10) + " 1000 100 0\n"
	status := "Name:\t" + fp.comm + "\nUmask:\t0022\nUid:\t" + strconv.Itoa(int(fp.uid)) + "\t0\t0\t0\nGid:\t" +
		strconv.Itoa(int(fp.gid)) + "\t0\t0\t0\n"
	files := map[string]string{
		"stat":    stat,
		"status":  status,
		"cmdline": strings.Join(fp.args, "\x00") + "\x00",
		"cgroup":  "0::" + fp.cgroup + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if fp.exe != "" {
		if err := os.Symlink(fp.exe, filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadProcessFake(t *testing.T) {
	root := t.TempDir()
	writeFakeProc(t, root, fakeProcess{
		pid: 4242, ppid: 1, comm: "my (prog)", startTicks: 777, uid: 1000, gid: 1001,
		exe: "/usr/bin/prog", args: []string{"/usr/bin/prog", "--flag", "x y"},
		cgroup: "/system.slice/docker-" + id1 + ".scope",
	})
	got, err := readProcess(root, 4242)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{
		PID: 4242, PPID: 1, StartNS: 777 * tickNS, UID: 1000, GID: 1001, Comm: "my (prog)",
		Exe: "/usr/bin/prog", Args: []string{"/usr/bin/prog", "--flag", "x y"},
		Cgroup: "/system.slice/docker-" + id1 + ".scope", Container: Container{ID: id1, Runtime: "docker"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := readProcess(root, 999); err == nil {
		t.Error("reading a missing pid succeeded")
	}
}

func TestReadProcessArgsBounded(t *testing.T) {
	root := t.TempDir()
	long := strings.Repeat("x", 3000)
	writeFakeProc(t, root, fakeProcess{pid: 5, ppid: 1, comm: "p", args: []string{"p", long, long}})
	p, err := readProcess(root, 5)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range p.Args {
		n += len(a) + 1
	}
	if n > MaxArgsBytes+1 || len(p.Args) != 3 || p.Args[1] != long {
		t.Errorf("args not bounded as expected: %d args, %d bytes", len(p.Args), n)
	}
}
