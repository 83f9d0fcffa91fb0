// Package all links every probe into the binary: one import per probe.
package all

import (
	_ "github.com/vigilproject/vigil/internal/probe/filechange" // file changes (unlink, rename, chmod, chown, ...)
	_ "github.com/vigilproject/vigil/internal/probe/l7"         // TCP connection data (L7 parsers' input)
	_ "github.com/vigilproject/vigil/internal/probe/open"       // file opens
	_ "github.com/vigilproject/vigil/internal/probe/process"    // process lifecycle
	_ "github.com/vigilproject/vigil/internal/probe/sched"      // run-queue latency, off-CPU time by reason
	_ "github.com/vigilproject/vigil/internal/probe/syscalls"   // syscall statistics
	_ "github.com/vigilproject/vigil/internal/probe/tcp"        // TCP lifecycle, RTT, retransmits, traffic
)
