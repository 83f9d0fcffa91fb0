// Package scenarios runs rule scenarios: YAML files that list real actions
// (run this program, read that file, connect there) and the alerts the
// default event rules must and must not raise for them.
//
// Format (one scenario per file):
//
//	scenario: exec-from-tmp              # name
//	desc: a binary copied to /tmp runs
//	needs: [exec]                        # event kinds; skipped when a kind has no probe
//	requires: [/usr/bin/gcc]             # programs used; skipped when one is missing
//	actions:                             # run in order
//	  - copy: {from: /bin/true, to: "${tmp}/payload", mode: 0755}
//	  - listen: {id: srv, addr: "${host_ip}:0"}        # TCP listener kept open
//	  - cgroup: {id: ctr, name: "docker-${rand64}.scope"} # a cgroup named like a container's
//	  - run: {id: p, argv: ["${tmp}/payload"], cgroup: ctr}
//	  - run: {id: s, shell: 'read -r x < /etc/shadow; : 3<>/dev/tcp/${host_ip}/${port:srv}'}
//	  - fd_exec: {id: m, from: /bin/true, memfd: true}  # exec through /dev/fd/N (memfd or deleted file)
//	  - sleep: 500ms
//	expect:                              # alerts that must arrive
//	  - {rule: ExecFromTempOrMemory, process: p, summary: "executed as pid"}
//	  - {rule: ShellFromNetworkServer, child_of: n}
//	absent:                              # alerts that must not arrive
//	  - {rule: ExecFromTempOrMemory, process: p}
//	wait: 3s                             # how long to wait for alerts
//
// process matches the alert's pid annotation against the pid of a `run`
// action; child_of matches the ppid of the alert's (last) event. Variables:
// ${tmp} (a fresh directory), ${host_ip} (a non-loopback address of this
// host), ${port:ID} (a listener's port), ${closed_port} (a loopback port with
// no listener), ${rand64} (64 fresh hex digits), ${token} (16 hex digits, the
// same for the whole scenario).
package scenarios

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/vigilproject/vigil/internal/alert"
)

// Scenario is one parsed scenario file.
type Scenario struct {
	Name  string   `yaml:"scenario"`
	Desc  string   `yaml:"desc"`
	Needs []string `yaml:"needs"`
	// Requires lists programs the actions run; the scenario is skipped
	// when one is missing.
	Requires []string `yaml:"requires"`
	Actions  []Action `yaml:"actions"`
	Expect   []Match  `yaml:"expect"`
	Absent   []Match  `yaml:"absent"`
	Wait     string   `yaml:"wait"`
	File     string   `yaml:"-"`
}

// Action is one step; exactly one field is set.
type Action struct {
	Copy   *CopyAction   `yaml:"copy"`
	Run    *RunAction    `yaml:"run"`
	FDExec *FDExecAction `yaml:"fd_exec"`
	Listen *ListenAction `yaml:"listen"`
	Cgroup *CgroupAction `yaml:"cgroup"`
	Sleep  string        `yaml:"sleep"`
}

type CopyAction struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	Mode uint32 `yaml:"mode"`
}

type RunAction struct {
	ID     string   `yaml:"id"`
	Argv   []string `yaml:"argv"`
	Shell  string   `yaml:"shell"`
	Cgroup string   `yaml:"cgroup"`
	// Fail allows a non-zero exit status.
	Fail bool `yaml:"fail"`
}

type FDExecAction struct {
	ID    string   `yaml:"id"`
	From  string   `yaml:"from"`
	Memfd bool     `yaml:"memfd"` // memfd_create; else a file that is deleted before exec
	Args  []string `yaml:"args"`
}

type ListenAction struct {
	ID   string `yaml:"id"`
	Addr string `yaml:"addr"`
}

type CgroupAction struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// Match selects alerts.
type Match struct {
	Rule    string `yaml:"rule"`
	Process string `yaml:"process"`
	ChildOf string `yaml:"child_of"`
	Summary string `yaml:"summary"` // substring of the summary annotation
}

// Load parses a scenario file strictly.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	s := &Scenario{File: path}
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Name == "" || len(s.Actions) == 0 || len(s.Expect)+len(s.Absent) == 0 {
		return nil, fmt.Errorf("%s: a scenario needs a name, actions and expect or absent", path)
	}
	return s, nil
}

// WaitFor is how long to wait for alerts.
func (s *Scenario) WaitFor() time.Duration {
	if d, err := time.ParseDuration(s.Wait); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

// Runner performs a scenario's actions and remembers what they started.
type Runner struct {
	Tmp       string
	HostIP    string
	CgroupDir string // cgroup v2 mount

	PIDs      map[string]int
	listeners map[string]net.Listener
	cgroups   map[string]string
	Started   time.Time
	// Token is random per runner, for unique names (${token}).
	Token string
}

// NewRunner prepares a runner with its own temporary directory.
func NewRunner(tmp string) (*Runner, error) {
	ip, err := HostIP()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Runner{Token: hex.EncodeToString(b), Tmp: tmp, HostIP: ip, CgroupDir: cgroup2Mount(), PIDs: map[string]int{},
		listeners: map[string]net.Listener{}, cgroups: map[string]string{}}, nil
}

// HostIP returns a non-loopback IPv4 address of this host.
func HostIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no non-loopback IPv4 address on this host")
}

func cgroup2Mount() string {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

var varRE = regexp.MustCompile(`\$\{([a-z_0-9]+)(?::([A-Za-z0-9_]+))?\}`)

func (r *Runner) expand(s string) (string, error) {
	var err error
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRE.FindStringSubmatch(m)
		switch sub[1] {
		case "tmp":
			return r.Tmp
		case "host_ip":
			return r.HostIP
		case "token":
			return r.Token
		case "rand64":
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			return hex.EncodeToString(b)
		case "port":
			l := r.listeners[sub[2]]
			if l == nil {
				err = fmt.Errorf("${port:%s}: no listener %q", sub[2], sub[2])
				return m
			}
			return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		case "closed_port":
			l, e := net.Listen("tcp", "127.0.0.1:0")
			if e != nil {
				err = e
				return m
			}
			p := l.Addr().(*net.TCPAddr).Port
			l.Close()
			return strconv.Itoa(p)
		}
		err = fmt.Errorf("unknown variable %s", m)
		return m
	})
	return out, err
}

// Do performs every action in order.
func (r *Runner) Do(s *Scenario) error {
	r.Started = time.Now()
	for i, a := range s.Actions {
		if err := r.do(a); err != nil {
			return fmt.Errorf("%s: action %d: %w", s.File, i+1, err)
		}
	}
	return nil
}

func (r *Runner) do(a Action) error {
	switch {
	case a.Copy != nil:
		from, err := r.expand(a.Copy.From)
		if err != nil {
			return err
		}
		to, err := r.expand(a.Copy.To)
		if err != nil {
			return err
		}
		mode := os.FileMode(a.Copy.Mode)
		if mode == 0 {
			mode = 0o755
		}
		return copyFile(from, to, mode)
	case a.Listen != nil:
		addr, err := r.expand(a.Listen.Addr)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		r.listeners[a.Listen.ID] = l
	case a.Cgroup != nil:
		if r.CgroupDir == "" {
			return errors.New("no cgroup v2 hierarchy mounted")
		}
		name, err := r.expand(a.Cgroup.Name)
		if err != nil {
			return err
		}
		dir := filepath.Join(r.CgroupDir, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		r.cgroups[a.Cgroup.ID] = dir
		// The agent resolves new cgroup ids by walking the hierarchy at
		// most every 500ms.
		time.Sleep(600 * time.Millisecond)
	case a.Run != nil:
		return r.run(a.Run)
	case a.FDExec != nil:
		return r.fdExec(a.FDExec)
	case a.Sleep != "":
		d, err := time.ParseDuration(a.Sleep)
		if err != nil {
			return err
		}
		time.Sleep(d)
	default:
		return errors.New("empty action")
	}
	return nil
}

func (r *Runner) run(a *RunAction) error {
	var argv []string
	if a.Shell != "" {
		sh, err := r.expand(a.Shell)
		if err != nil {
			return err
		}
		argv = []string{"/bin/bash", "-c", sh}
	} else {
		for _, s := range a.Argv {
			x, err := r.expand(s)
			if err != nil {
				return err
			}
			argv = append(argv, x)
		}
	}
	if len(argv) == 0 {
		return errors.New("run: argv or shell is required")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = r.Tmp
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if a.Cgroup != "" {
		dir := r.cgroups[a.Cgroup]
		if dir == "" {
			return fmt.Errorf("run: no cgroup %q", a.Cgroup)
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	err := cmd.Run()
	if cmd.Process != nil && a.ID != "" {
		r.PIDs[a.ID] = cmd.Process.Pid
	}
	if err != nil && !a.Fail {
		return fmt.Errorf("run %v: %w: %s", argv, err, out.String())
	}
	return nil
}

// fdExec runs a program through /dev/fd/3: from a memfd, or from a file
// that was deleted before the exec.
func (r *Runner) fdExec(a *FDExecAction) error {
	src, err := os.Open(a.From)
	if err != nil {
		return err
	}
	defer src.Close()
	var f *os.File
	if a.Memfd {
		fd, err := unix.MemfdCreate("vigil-scenario", 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), "memfd")
	} else {
		p := filepath.Join(r.Tmp, "deleted-"+filepath.Base(a.From))
		if f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o755); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	defer f.Close()
	if _, err := io.Copy(f, src); err != nil {
		return err
	}
	// A file open for writing cannot be executed (ETXTBSY): reopen it
	// read-only through /proc.
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return err
	}
	defer ro.Close()
	f.Close()
	// Not exec.Command: it would look /dev/fd/3 up in this process.
	cmd := &exec.Cmd{Path: "/dev/fd/3", Args: append([]string{"payload"}, a.Args...), Dir: r.Tmp}
	cmd.ExtraFiles = []*os.File{ro}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if cmd.Process != nil && a.ID != "" {
		r.PIDs[a.ID] = cmd.Process.Pid
	}
	if err != nil {
		return fmt.Errorf("fd_exec: %w: %s", err, out.String())
	}
	return nil
}

// Close releases listeners and cgroups.
func (r *Runner) Close() {
	for _, l := range r.listeners {
		l.Close()
	}
	for _, d := range r.cgroups {
		for i := 0; i < 20 && os.Remove(d) != nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Matches reports whether alert a is selected by m, given the runner's pids.
func (r *Runner) Matches(m Match, a alert.Alert) bool {
	if a.Labels["alertname"] != m.Rule {
		return false
	}
	if m.Process != "" {
		pid, ok := r.PIDs[m.Process]
		if !ok || a.Annotations["pid"] != strconv.Itoa(pid) {
			return false
		}
	}
	if m.ChildOf != "" {
		pid, ok := r.PIDs[m.ChildOf]
		if !ok || lastPPID(a) != pid {
			return false
		}
	}
	if m.Summary != "" && !strings.Contains(a.Annotations["summary"], m.Summary) {
		return false
	}
	return true
}

func lastPPID(a alert.Alert) int {
	var ev struct {
		PPID int `json:"ppid"`
	}
	if s := a.Annotations["event"]; s != "" {
		if json.Unmarshal([]byte(s), &ev) == nil {
			return ev.PPID
		}
	}
	var evs []struct {
		PPID int `json:"ppid"`
	}
	if s := a.Annotations["events"]; s != "" && json.Unmarshal([]byte(s), &evs) == nil && len(evs) > 0 {
		return evs[len(evs)-1].PPID
	}
	return -1
}
