package eventrules

import (
	"path/filepath"
	"runtime"
	"testing"
)

func defaultPack(t testing.TB) []string {
	_, file, _, _ := runtime.Caller(0)
	files, err := filepath.Glob(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "rules", "events", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("default pack not found: %v", err)
	}
	return files
}
