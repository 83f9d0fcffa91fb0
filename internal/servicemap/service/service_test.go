package service

import (
	"testing"

	"github.com/vigilproject/vigil/internal/event"
)

func TestOf(t *testing.T) {
	for _, c := range []struct {
		p    event.Process
		want Identity
	}{
		{event.Process{Comm: "nginx", Container: "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8", Unit: "docker.service"}, Identity{"3f2a9c1b7d4e", KindContainer}},
		{event.Process{Comm: "nginx", Unit: "nginx.service"}, Identity{"nginx.service", KindUnit}},
		{event.Process{Comm: "bash", Unit: "session-3.scope"}, Identity{"bash", KindProcess}},
		{event.Process{Comm: "curl"}, Identity{"curl", KindProcess}},
		{event.Process{}, Identity{"unknown", KindProcess}},
	} {
		if got := Of(&c.p); got != c.want {
			t.Errorf("%+v: %+v, want %+v", c.p, got, c.want)
		}
	}
	if id := External("10.0.0.5:443").ID(); id != "external/10.0.0.5:443" {
		t.Fatal(id)
	}
}
