package proc

import (
	"encoding/json"
	"testing"
)

const (
	id1 = "3f1c4ad9b0e2c7f85e6d0a91b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5"
	id2 = "a8d2e0f4c6b1937d5e0f2a4c6e8b0d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b"
	uid = "6b1c5f2e-9a0d-4e3b-8c7f-1a2b3c4d5e6f"
	// the same UID as the systemd cgroup driver spells it
	uidU = "6b1c5f2e_9a0d_4e3b_8c7f_1a2b3c4d5e6f"
)

func TestParseCgroupPath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Container
	}{
		{"root", "/", Container{}},
		{"empty", "", Container{}},
		{"init", "/init.scope", Container{Unit: "init.scope"}},
		{"host service", "/system.slice/nginx.service", Container{Unit: "nginx.service"}},
		{"ssh", "/system.slice/ssh.service", Container{Unit: "ssh.service"}},
		{"templated service", "/system.slice/system-getty.slice/getty@tty1.service", Container{Unit: "getty@tty1.service"}},
		{"login session", "/user.slice/user-1000.slice/session-3.scope", Container{Unit: "session-3.scope"}},
		{"user manager", "/user.slice/user-1000.slice/user@1000.service/init.scope", Container{Unit: "init.scope"}},
		{"user service", "/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service", Container{Unit: "pipewire.service"}},
		{"slice only", "/system.slice", Container{}},

		{"docker cgroupfs", "/docker/" + id1, Container{ID: id1, Runtime: "docker"}},
		{"docker systemd", "/system.slice/docker-" + id1 + ".scope", Container{ID: id1, Runtime: "docker"}},
		{"docker in docker", "/docker/" + id1 + "/docker/" + id2, Container{ID: id2, Runtime: "docker"}},
		{"docker daemon itself", "/system.slice/docker.service", Container{Unit: "docker.service"}},
		{"containerd daemon", "/system.slice/containerd.service", Container{Unit: "containerd.service"}},
		{"not an id", "/system.slice/docker-foo.scope", Container{Unit: "docker-foo.scope"}},
		{"short hex", "/docker/3f1c4ad9b0e2", Container{}},
		{"uppercase hex is not an id", "/docker/3F1C4AD9B0E2C7F85E6D0A91B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5", Container{}},

		{"k8s containerd cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + id1,
			Container{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"k8s containerd cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id1,
			Container{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"k8s containerd cgroupfs besteffort", "/kubepods/besteffort/pod" + uid + "/" + id2,
			Container{ID: id2, Runtime: "containerd", PodUID: uid}},
		{"k8s containerd systemd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			Container{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"k8s containerd systemd guaranteed",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			Container{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"k8s containerd systemd besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id2 + ".scope",
			Container{ID: id2, Runtime: "containerd", PodUID: uid}},
		{"k8s static pod uid is a hash",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d4e5f60718293a4b5c6d7e8f9.slice/cri-containerd-" + id1 + ".scope",
			Container{ID: id1, Runtime: "containerd", PodUID: "0a1b2c3d4e5f60718293a4b5c6d7e8f9"}},
		{"k8s pod slice without container", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
			Container{PodUID: uid}},
		{"k8s cri-dockerd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/docker-" + id1 + ".scope",
			Container{ID: id1, Runtime: "docker", PodUID: uid}},
		{"kind: pod inside a node container",
			"/system.slice/docker-" + id2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			Container{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"kind node itself", "/system.slice/docker-" + id2 + ".scope/kubelet.slice/kubelet.service",
			Container{ID: id2, Runtime: "docker"}},
		{"kubelet", "/system.slice/kubelet.service", Container{Unit: "kubelet.service"}},

		{"crio systemd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + id1 + ".scope",
			Container{ID: id1, Runtime: "cri-o", PodUID: uid}},
		{"crio conmon is not the container",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-conmon-" + id1 + ".scope",
			Container{PodUID: uid, Unit: "crio-conmon-" + id1 + ".scope"}},
		{"crio cgroupfs", "/kubepods/burstable/pod" + uid + "/crio-" + id1,
			Container{ID: id1, Runtime: "cri-o", PodUID: uid}},
		{"crio crun container subgroup",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + id1 + ".scope/container",
			Container{ID: id1, Runtime: "cri-o", PodUID: uid}},

		{"podman rootful", "/machine.slice/libpod-" + id1 + ".scope", Container{ID: id1, Runtime: "podman"}},
		{"podman crun subgroup", "/machine.slice/libpod-" + id1 + ".scope/container", Container{ID: id1, Runtime: "podman"}},
		{"podman rootless",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope",
			Container{ID: id1, Runtime: "podman"}},
		{"podman rootless container subgroup",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope/container",
			Container{ID: id1, Runtime: "podman"}},
		{"podman pod", "/machine.slice/machine-libpod_pod_" + id2 + ".slice/libpod-" + id1 + ".scope",
			Container{ID: id1, Runtime: "podman"}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + id1 + ".scope", Container{Unit: "libpod-conmon-" + id1 + ".scope"}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id1, Container{ID: id1, Runtime: "podman"}},
		{"podman cgroupfs bare", "/libpod_parent/" + id1, Container{ID: id1, Runtime: "podman"}},

		{"containerd default namespace", "/default/" + id1, Container{ID: id1, Runtime: "containerd"}},
		{"nerdctl systemd", "/system.slice/nerdctl-" + id1 + ".scope", Container{ID: id1, Runtime: "containerd"}},
		{"unknown parent, bare id", "/ecs/task/" + id1, Container{ID: id1}},
		{"trailing slash", "/docker/" + id1 + "/", Container{ID: id1, Runtime: "docker"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCgroupPath(tt.path); got != tt.want {
				t.Errorf("ParseCgroupPath(%q)\n got  %+v\n want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestContainerShort(t *testing.T) {
	if got := (Container{ID: id1}).Short(); got != id1[:12] {
		t.Errorf("Short() = %q, want %q", got, id1[:12])
	}
	if got := (Container{Unit: "ssh.service"}).Short(); got != "" {
		t.Errorf("Short() of host = %q, want empty", got)
	}
}

func TestContainerJSON(t *testing.T) {
	b, err := json.Marshal(Container{ID: id1, Runtime: "docker"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"container_id":"` + id1 + `","container_runtime":"docker"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	b, _ = json.Marshal(Container{})
	if string(b) != "{}" {
		t.Errorf("host container marshals to %s, want {}", b)
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		wantPath string
		want     Container
	}{
		{"pure v2", "0::/system.slice/docker-" + id1 + ".scope\n",
			"/system.slice/docker-" + id1 + ".scope", Container{ID: id1, Runtime: "docker"}},
		{"pure v2 host", "0::/system.slice/ssh.service\n", "/system.slice/ssh.service", Container{Unit: "ssh.service"}},
		{"hybrid, container only in v1",
			"12:memory:/docker/" + id1 + "\n1:name=systemd:/docker/" + id1 + "\n0::/\n",
			"/", Container{ID: id1, Runtime: "docker"}},
		{"hybrid, both", "4:cpu,cpuacct:/system.slice/docker-" + id2 + ".scope\n1:name=systemd:/system.slice/docker-" + id2 + ".scope\n0::/system.slice/docker-" + id2 + ".scope\n",
			"/system.slice/docker-" + id2 + ".scope", Container{ID: id2, Runtime: "docker"}},
		{"pure v1 uses name=systemd path", "3:cpu:/\n1:name=systemd:/system.slice/cron.service\n",
			"/system.slice/cron.service", Container{Unit: "cron.service"}},
		{"no trailing newline", "0::/init.scope", "/init.scope", Container{Unit: "init.scope"}},
		{"garbage", "nonsense\n", "", Container{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, c := parseProcCgroup([]byte(tt.data))
			if path != tt.wantPath || c != tt.want {
				t.Errorf("got (%q, %+v), want (%q, %+v)", path, c, tt.wantPath, tt.want)
			}
		})
	}
}

func BenchmarkParseCgroupPath(b *testing.B) {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope"
	b.ReportAllocs()
	for b.Loop() {
		ParseCgroupPath(p)
	}
}
