package process_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/testutil"
)

// expectArgs is what an exec event must carry for argv when the kernel
// copies at most maxBytes of the NUL-separated argument area and user space
// keeps at most maxArgs arguments: computed here from first principles, not
// with the decoder under test.
func expectArgs(argv []string, maxBytes, maxArgs int) (args []string, truncated bool) {
	area := strings.Join(argv, "\x00") + "\x00"
	if len(area) > maxBytes {
		area, truncated = area[:maxBytes], true
	}
	args = strings.Split(area, "\x00")
	if strings.HasSuffix(area, "\x00") {
		args = args[:len(args)-1] // the terminator of the last whole argument
	}
	if len(args) > maxArgs {
		args, truncated = args[:maxArgs], true
	}
	return args, truncated
}

func TestExpectArgs(t *testing.T) {
	args, tr := expectArgs([]string{"abc", "de", "f"}, 5, 64)
	if !slices.Equal(args, []string{"abc", "d"}) || !tr {
		t.Errorf("%q %v", args, tr)
	}
	args, tr = expectArgs([]string{"abc", "de"}, 7, 64)
	if !slices.Equal(args, []string{"abc", "de"}) || tr {
		t.Errorf("%q %v", args, tr)
	}
	args, tr = expectArgs([]string{"abc", "de"}, 6, 64)
	if !slices.Equal(args, []string{"abc", "de"}) || !tr {
		t.Errorf("%q %v", args, tr)
	}
}

// longArgv builds argv[0]=marker followed by n arguments of size bytes,
// each starting with its index so a shifted prefix cannot pass.
func longArgv(marker string, n, size int) []string {
	argv := []string{marker}
	for i := 0; i < n; i++ {
		s := fmt.Sprintf("%03d", i)
		argv = append(argv, s+strings.Repeat(string(rune('a'+i%26)), size-len(s)))
	}
	return argv
}

func TestArgvTruncation(t *testing.T) {
	cases := []struct {
		name      string
		cfg       string
		maxBytes  int
		maxArgs   int
		n, size   int
		wantTrunc bool
	}{
		{"fits", "", 4096, 64, 10, 100, false},
		{"default byte limit", "", 4096, 64, 50, 100, true},
		{"max_args_bytes 100", "probes:\n  process:\n    max_args_bytes: 100\n", 100, 64, 5, 40, true},
		{"max_args_bytes 8191", "probes:\n  process:\n    max_args_bytes: 8191\n", 8191, 64, 100, 100, true},
		{"max_args 3", "probes:\n  process:\n    max_args: 3\n", 4096, 3, 6, 10, true},
		{"exactly max_args", "probes:\n  process:\n    max_args: 4\n", 4096, 4, 3, 10, false},
		{"many short args", "", 4096, 64, 100, 4, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := startAgent(t, c.cfg)
			marker := testutil.Marker("vt")
			argv := longArgv(marker, c.n, c.size)
			want, wantTrunc := expectArgs(argv, c.maxBytes, c.maxArgs)
			if wantTrunc != c.wantTrunc {
				t.Fatalf("test case inconsistent: truncation %v", wantTrunc)
			}

			// A successful exec: argv read from the new image's arg area.
			cmd := commandArgv0("/bin/true", argv...)
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			e := waitN(h, 1, "exec", execOf(cmd.Process.Pid))[0]
			check(t, "exec", e, want, wantTrunc)

			// A failed exec: argv read from the caller's argv pointers.
			path := "/nonexistent-" + marker
			failExec(t, path, argv)
			f := waitN(h, 1, "failed exec", func(e *event.Exec) bool { return e.Filename == path })[0]
			check(t, "failed exec", f, want, wantTrunc)
		})
	}
}

func check(t *testing.T, what string, e *event.Exec, want []string, trunc bool) {
	t.Helper()
	if !slices.Equal(e.Args, want) || e.ArgsTruncated != trunc {
		t.Errorf("%s: got %d args (%d bytes) truncated=%v, want %d args (%d bytes) truncated=%v\n got: %s\nwant: %s",
			what, len(e.Args), len(strings.Join(e.Args, "\x00")), e.ArgsTruncated,
			len(want), len(strings.Join(want, "\x00")), trunc, ends(e.Args), ends(want))
	}
}

// Empty arguments are arguments: `prog "" x ""` has four, in the middle and
// at the end alike.
func TestEmptyArgs(t *testing.T) {
	h := startAgent(t, "")
	marker := testutil.Marker("ve")
	argv := []string{marker, "", "mid", "", ""}
	cmd := commandArgv0("/bin/true", argv...)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	check(t, "exec", waitN(h, 1, "exec", execOf(cmd.Process.Pid))[0], argv, false)
	path := "/nonexistent-" + marker
	failExec(t, path, argv)
	check(t, "failed exec", waitN(h, 1, "failed exec", func(e *event.Exec) bool { return e.Filename == path })[0], argv, false)
}

// ends shows the first two and last two arguments, enough to see where two
// long argument lists part.
func ends(args []string) string {
	if len(args) <= 4 {
		return fmt.Sprintf("%q", args)
	}
	return fmt.Sprintf("%q ... %q", args[:2], args[len(args)-2:])
}
