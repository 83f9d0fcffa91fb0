package kernel

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// Assign fills bpf2go-style map structs by their ebpf tags, embedded
// structs included, and names what is missing or mistyped.
func TestAssign(t *testing.T) {
	events, socks := new(ebpf.Map), new(ebpf.Map)
	o := &Object{Probe: "demo", Maps: map[string]*ebpf.Map{"events": events, "socks": socks}}

	type inner struct {
		Socks *ebpf.Map `ebpf:"socks"`
	}
	var got struct {
		inner
		Events   *ebpf.Map `ebpf:"events"`
		Untagged *ebpf.Map
	}
	if err := o.Assign(&got); err != nil {
		t.Fatal(err)
	}
	if got.Events != events || got.Socks != socks || got.Untagged != nil {
		t.Errorf("assigned events %p socks %p untagged %p; want %p %p nil", got.Events, got.Socks, got.Untagged, events, socks)
	}

	var missing struct {
		Agg *ebpf.Map `ebpf:"agg"`
	}
	if err := o.Assign(&missing); err == nil || !strings.Contains(err.Error(), `demo: BPF object has no map "agg"`) {
		t.Errorf("missing map: %v", err)
	}
	var wrong struct {
		Events *ebpf.Program `ebpf:"events"`
	}
	if err := o.Assign(&wrong); err == nil || !strings.Contains(err.Error(), "want *ebpf.Map") {
		t.Errorf("wrong field type: %v", err)
	}
	if err := o.Assign(got); err == nil || !strings.Contains(err.Error(), "pointer to a struct") {
		t.Errorf("non-pointer: %v", err)
	}
}

// DecodeRecord copies the fixed part of a record, ignores a longer tail and
// rejects a short record.
func TestDecodeRecord(t *testing.T) {
	type rec struct {
		Kind uint8
		_    [3]byte
		PID  uint32
		TS   uint64
	}
	b := []byte{2, 0, 0, 0, 0x39, 0x30, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 'p', 'a', 't', 'h'}
	r, err := DecodeRecord[rec](b)
	if err != nil || r.Kind != 2 || r.PID != 12345 || r.TS != 1 {
		t.Errorf("decoded %+v, %v", r, err)
	}
	if _, err := DecodeRecord[rec](b[:15]); err == nil {
		t.Error("short record decoded")
	}
}
