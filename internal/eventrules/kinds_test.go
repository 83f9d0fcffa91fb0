package eventrules

// The probes register the event kinds rules can name; the binary imports
// them through probe/all, the tests import the ones they use.
import (
	_ "github.com/vigilproject/vigil/internal/l7/httpflow" // http (derived), used by the default pack
	_ "github.com/vigilproject/vigil/internal/probe/filechange"
	_ "github.com/vigilproject/vigil/internal/probe/open"
	_ "github.com/vigilproject/vigil/internal/probe/process"
	_ "github.com/vigilproject/vigil/internal/probe/tcp"
)
