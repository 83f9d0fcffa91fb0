package kernel

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/cilium/ebpf"
)

var mapType = reflect.TypeOf((*ebpf.Map)(nil))

// Assign fills the *ebpf.Map fields of the struct to points to from the
// object's maps, by their `ebpf:"name"` tags: the shape of the xxxMaps
// struct bpf2go generates, so probes reach maps through typed fields instead
// of names spelled in strings. Embedded structs are filled too. A tagged
// field whose map the object lacks is an error naming it. The maps stay
// owned by the object: do not Close the struct.
func (o *Object) Assign(to any) error {
	v := reflect.ValueOf(to)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("%s: Assign wants a pointer to a struct, got %T", o.Probe, to)
	}
	return o.assign(v.Elem())
}

func (o *Object) assign(v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := o.assign(v.Field(i)); err != nil {
				return err
			}
			continue
		}
		name, ok := f.Tag.Lookup("ebpf")
		if !ok {
			continue
		}
		if f.Type != mapType {
			return fmt.Errorf("%s: field %s.%s (ebpf:%q) is %s, want *ebpf.Map", o.Probe, t.Name(), f.Name, name, f.Type)
		}
		if !f.IsExported() {
			return fmt.Errorf("%s: field %s.%s (ebpf:%q) is not exported", o.Probe, t.Name(), f.Name, name)
		}
		m, ok := o.Maps[name]
		if !ok {
			return fmt.Errorf("%s: BPF object has no map %q (field %s.%s)", o.Probe, name, t.Name(), f.Name)
		}
		v.Field(i).Set(reflect.ValueOf(m))
	}
	return nil
}

// DecodeRecord copies a ring-buffer record into T, the struct bpf2go
// generated from the record's C definition, so no field offset is written
// by hand. The record may be longer than T (a variable-length tail follows
// the fixed part); a shorter one is an error.
func DecodeRecord[T any](b []byte) (T, error) {
	var r T
	n := int(unsafe.Sizeof(r))
	if len(b) < n {
		return r, fmt.Errorf("record too short: %d bytes, want at least %d for %T", len(b), n, r)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), n), b)
	return r, nil
}
