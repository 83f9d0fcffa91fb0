package proc

import (
	"bytes"
	"strings"
)

// Container identifies what a process runs in: a container (ID, runtime and,
// under Kubernetes, the pod UID) or, for host processes, the systemd unit.
type Container struct {
	ID      string `json:"container_id,omitempty"`      // full 64-hex id
	Runtime string `json:"container_runtime,omitempty"` // docker, containerd, cri-o, podman
	PodUID  string `json:"pod_uid,omitempty"`
	Unit    string `json:"systemd_unit,omitempty"` // e.g. ssh.service, for host services
}

// Short returns the 12-character id that docker and crictl print, or "" for
// a host process.
func (c Container) Short() string {
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

// IsContainer reports whether c names a container rather than a host process.
func (c Container) IsContainer() bool { return c.ID != "" }

// Runtime names used in Container.Runtime.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
)

// scopePrefixes are the cgroup leaf names runtimes create, with ".scope"
// (systemd driver) or without it (cgroupfs driver). Conmon prefixes must come
// before the container ones: crio-conmon-<id> is the monitor process of a
// container, a host process, not the container itself.
var scopePrefixes = []struct {
	prefix, runtime string
	conmon          bool
}{
	{"crio-conmon-", RuntimeCRIO, true},
	{"libpod-conmon-", RuntimePodman, true},
	{"docker-", RuntimeDocker, false},
	{"cri-containerd-", RuntimeContainerd, false},
	{"crio-", RuntimeCRIO, false},
	{"libpod-", RuntimePodman, false},
	{"nerdctl-", RuntimeContainerd, false},
}

// ParseCgroupPath extracts the container (or, for host processes, the systemd
// unit) from a cgroup v2 path such as
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope.
// Components are examined from the deepest up, so nested setups (a container
// inside a kind node container, podman's ".../libpod-<id>.scope/container")
// resolve to the innermost container.
func ParseCgroupPath(path string) Container {
	var c Container
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		id, runtime, conmon, ok := containerComponent(parts, i)
		if !ok {
			continue
		}
		c.PodUID = findPodUID(parts[:i])
		if conmon {
			// A host process in the container's pod: keep the pod and
			// report the conmon scope as its unit.
			c.Unit = parts[i]
			return c
		}
		c.ID, c.Runtime = id, runtime
		return c
	}
	c.PodUID = findPodUID(parts)
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.HasSuffix(parts[i], ".service") || strings.HasSuffix(parts[i], ".scope") {
			c.Unit = parts[i]
			break
		}
	}
	return c
}

// containerComponent reports whether parts[i] names a container.
func containerComponent(parts []string, i int) (id, runtime string, conmon, ok bool) {
	s := parts[i]
	if isHex64(s) {
		// A bare id: the cgroupfs driver's layout. The parent says whose.
		parent := ""
		if i > 0 {
			parent = parts[i-1]
		}
		switch {
		case parent == "docker":
			runtime = RuntimeDocker
		case parent == "libpod_parent":
			runtime = RuntimePodman
		case strings.HasPrefix(parent, "pod") && findPodUID(parts[i-1:i]) != "":
			// /kubepods/<qos>/pod<uid>/<id>: CRI-O prefixes its ids with
			// "crio-", and dockershim is gone, so this is containerd.
			runtime = RuntimeContainerd
		case parent == "default" || parent == "k8s.io":
			// containerd namespaces, /<namespace>/<id>.
			runtime = RuntimeContainerd
		}
		return s, runtime, false, true
	}
	name := strings.TrimSuffix(s, ".scope")
	for _, sp := range scopePrefixes {
		if !strings.HasPrefix(name, sp.prefix) {
			continue
		}
		if rest := name[len(sp.prefix):]; isHex64(rest) {
			return rest, sp.runtime, sp.conmon, true
		}
		// A prefix without an id after it ("docker-foo.scope") is not a
		// container; a later, shorter prefix may still match.
	}
	return "", "", false, false
}

// findPodUID returns the Kubernetes pod UID named by the deepest pod
// component of parts: "pod<uid>" (cgroupfs driver) or
// "kubepods[-<qos>]-pod<uid_with_underscores>.slice" (systemd driver).
func findPodUID(parts []string) string {
	for i := len(parts) - 1; i >= 0; i-- {
		s := parts[i]
		var uid string
		switch {
		case strings.HasSuffix(s, ".slice"):
			j := strings.LastIndex(s, "-pod")
			if j < 0 || !strings.Contains(s[:j+1], "kubepods") {
				continue
			}
			uid = s[j+len("-pod") : len(s)-len(".slice")]
		case strings.HasPrefix(s, "pod"):
			uid = s[len("pod"):]
		default:
			continue
		}
		if isPodUID(uid) {
			// systemd cannot have '-' inside a slice name component, so
			// the kubelet writes the UID with underscores.
			return strings.ReplaceAll(uid, "_", "-")
		}
	}
	return ""
}

// isPodUID accepts a UUID (with '-' or '_') or the 32-hex hash that static
// pods get as UID.
func isPodUID(s string) bool {
	if len(s) != 36 && len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isHexByte(b) && b != '-' && b != '_' {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isHexByte(b byte) bool {
	return ('0' <= b && b <= '9') || ('a' <= b && b <= 'f')
}

// parseProcCgroup reads the content of /proc/<pid>/cgroup. It returns the
// cgroup v2 path (the "0::" line) and the container found in it. On hybrid
// hosts where runtimes place containers in v1 hierarchies only, the v2 path
// may name no container; then the v1 lines are tried for the container id.
// On a v1-only host the name=systemd path stands in for the v2 path.
func parseProcCgroup(data []byte) (path string, c Container) {
	var v1 []string
	systemd := ""
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		// hierarchy-ID:controller-list:cgroup-path
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		hier, ctrl, p := line[:i], line[i+1:i+1+j], string(line[i+j+2:])
		switch {
		case string(hier) == "0" && len(ctrl) == 0:
			path = p
		case string(ctrl) == "name=systemd":
			systemd = p
			v1 = append(v1, p)
		default:
			v1 = append(v1, p)
		}
	}
	if path == "" {
		path = systemd
	}
	c = ParseCgroupPath(path)
	if c.ID != "" {
		return path, c
	}
	for _, p := range v1 {
		if p == "/" || p == path {
			continue
		}
		if vc := ParseCgroupPath(p); vc.ID != "" {
			return path, vc
		}
	}
	return path, c
}
