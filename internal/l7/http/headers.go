package http

import (
	"bytes"
	"strings"
)

// Redacted replaces the value of every header on the deny-list.
const Redacted = "[REDACTED]"

// Header is one header kept by the parser (Config.KeepHeaders), its value
// already redacted when the name is on the deny-list.
type Header struct {
	Name, Value string
}

// deniedNames are header names whose values carry credentials or session
// state; lower case.
var deniedNames = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie", "cookie2", "set-cookie2",
	"x-api-key", "api-key", "apikey", "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token",
	"x-amz-security-token", "x-goog-api-key", "x-vault-token", "private-token", "x-forwarded-authorization",
}

// deniedParts catch the many vendor variants (X-Foo-Token, X-Client-Secret,
// X-Session-Id, ...): any name containing one of them is redacted.
var deniedParts = []string{"token", "secret", "password", "passwd", "session", "auth", "api-key", "apikey", "credential", "signature"}

// IsDenied reports whether the value of header name must be redacted. extra
// holds additional lower-case names (Config.RedactHeaders).
func IsDenied(name string, extra []string) bool {
	lower := strings.ToLower(name)
	for _, d := range deniedNames {
		if lower == d {
			return true
		}
	}
	for _, d := range extra {
		if lower == d {
			return true
		}
	}
	for _, p := range deniedParts {
		if strings.Contains(lower, p) {
			return true
		}
	}
	return false
}

// headerIs compares a header name with a lower-case constant.
func headerIs(name []byte, lower string) bool {
	return len(name) == len(lower) && bytes.EqualFold(name, []byte(lower))
}

// splitHeader cuts "Name: value" into trimmed name and value; ok is false for
// a line without a colon or with an empty name.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	return trimSpace(line[:i]), trimSpace(line[i+1:]), true
}

// trimSpace drops spaces and tabs at both ends (bytes.Trim with a cutset
// builds a set on every call; this is on the per-header path).
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
