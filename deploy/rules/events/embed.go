// Package events embeds the default event-rule pack (the YAML files next to
// this one), so that `vigil run` and `vigil trace alerts` alert out of the
// box. The files stay plain rule files: copy and edit them, or load them
// into another agent with --event-rules.file.
package events

import (
	"embed"
	"io/fs"
)

//go:embed *.yaml
var files embed.FS

// FS is the pack.
var FS fs.FS = files

// Names lists the pack's files, sorted.
func Names() []string {
	m, _ := fs.Glob(files, "*.yaml")
	return m
}
