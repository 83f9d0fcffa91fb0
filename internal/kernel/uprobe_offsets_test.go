package kernel_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/testutil"
)

// A set with per-binary offsets attaches at every offset given (two probes
// on one instruction count each call twice), once per file, and all or
// nothing: a bad offset undoes the good ones of the same binary.
func TestUprobeSetOffsets(t *testing.T) {
	bin := buildTarget(t)
	off := fileOffset(t, bin, "vigil_target")
	dir := t.TempDir()
	twice, bad := filepath.Join(dir, "twice"), filepath.Join(dir, "bad")
	for _, p := range []string{twice, bad} {
		if err := testutil.CopyFile(bin, p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	obj := loadTestprogLater(t, []string{"count_call"})
	set, err := obj.NewUprobeSet(kernel.UprobeSetOptions{Name: "rets", Program: "count_call"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Add(bin); err == nil || !strings.Contains(err.Error(), "this set takes AddOffsets") {
		t.Errorf("Add on an offsets set: %v", err)
	}
	if ok, err := set.AddOffsets(bin, []kernel.UprobeAt{{Offset: off, Cookie: 7}}); !ok || err != nil {
		t.Fatalf("AddOffsets: %v %v", ok, err)
	}
	if ok, err := set.AddOffsets(bin, []kernel.UprobeAt{{Offset: off}}); ok || err != nil {
		t.Errorf("same file again: %v %v, want no new attachment", ok, err)
	}
	if ok, err := set.AddOffsets(twice, []kernel.UprobeAt{{Offset: off}, {Offset: off, Cookie: 1}}); !ok || err != nil {
		t.Fatalf("AddOffsets twice: %v %v", ok, err)
	}
	if ok, err := set.AddOffsets(bad, []kernel.UprobeAt{{Offset: off}, {Offset: 1 << 40}}); ok || err == nil || !strings.Contains(err.Error(), "uprobe "+bad+" at offset 0x10000000000") {
		t.Errorf("bad offset: %v %v", ok, err)
	}
	if ok, err := set.AddOffsets(twice, nil); ok || err == nil {
		t.Errorf("no offsets: %v %v", ok, err)
	}
	if set.Len() != 2 {
		t.Errorf("Len %d, want 2", set.Len())
	}
	st := obj.Status()
	if len(st) != 2 || st[0].Target != "1 offsets" || st[1].Target != "2 offsets" || !strings.Contains(st[1].Detail, "binary "+twice) {
		t.Errorf("status %+v", st)
	}
	hits := obj.Maps["uprobe_hits"]
	for p, want := range map[string]uint64{bin: 5, twice: 10, bad: 0} {
		pid := runTarget(t, p, "calls", "5")
		if got := count(t, hits, pid); got != want {
			t.Errorf("%s: %d hits for 5 calls, want %d", p, got, want)
		}
	}
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, hits, runTarget(t, bin, "calls", fmt.Sprint(3))); got != 0 {
		t.Errorf("%d hits after Close", got)
	}
}
