package http

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Route bounds: a template never has more segments or bytes than these.
const (
	maxRouteSegments = 8
	maxRouteBytes    = 128
	// OtherRoute is the label of routes folded by a Routes cap.
	OtherRoute = "other"
)

// Template turns a path into a route with a bounded alphabet: numeric,
// UUID, hex and long token segments become {id}, {uuid}, {hex} and
// {token}; after maxRouteSegments segments the rest becomes "{rest}" and a
// route never exceeds maxRouteBytes. The query string must already be
// stripped (Exchange.Path is).
func Template(path string) string {
	if path == "" || path[0] != '/' {
		if path == "*" {
			return path
		}
		return "/"
	}
	var b strings.Builder
	b.Grow(min(len(path), maxRouteBytes))
	segs := 0
	rest := path[1:]
	for {
		seg, tail, more := strings.Cut(rest, "/")
		if segs == maxRouteSegments {
			b.WriteString("/{rest}")
			break
		}
		b.WriteByte('/')
		b.WriteString(templateSegment(seg))
		segs++
		if !more {
			break
		}
		rest = tail
	}
	out := b.String()
	if len(out) > maxRouteBytes {
		out = out[:maxRouteBytes-len("{rest}")] + "{rest}"
	}
	return out
}

func templateSegment(s string) string {
	if s == "" {
		return s
	}
	var digits, hexLetters, letters, others int
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hexLetters++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			letters++
		default:
			others++
		}
	}
	switch {
	case isUUID(s):
		return "{uuid}"
	case digits > 0 && hexLetters+letters == 0:
		// 123, 2024-01-02, 1.5, 10:30: numbers and dates
		return "{id}"
	case others == 0 && letters == 0 && len(s) >= 8 && (digits > 0 || len(s) >= 16):
		return "{hex}"
	case len(s) >= 24 && !strings.ContainsAny(s, ".~"):
		return "{token}"
	case len(s) >= 12 && digits >= 2 && hexLetters+letters > 0 && others <= 2:
		// mixed letters and digits: a generated id, not a word
		return "{token}"
	case len(s) > 64:
		return "{token}"
	}
	return s
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Routes caps the distinct routes per service so that a route can be a
// metric label: once a service has MaxPerService routes, new ones fold into
// OtherRoute; once MaxServices services are known, new services' routes
// all fold. Every fold is counted. Safe for concurrent use.
type Routes struct {
	maxPerService, maxServices int
	mu                         sync.Mutex
	services                   map[string]map[string]struct{}
	folds                      atomic.Uint64
}

// NewRoutes returns a route cap; zero or negative bounds mean 100 routes
// per service and 1000 services.
func NewRoutes(maxPerService, maxServices int) *Routes {
	if maxPerService <= 0 {
		maxPerService = 100
	}
	if maxServices <= 0 {
		maxServices = 1000
	}
	return &Routes{maxPerService: maxPerService, maxServices: maxServices, services: map[string]map[string]struct{}{}}
}

// Route returns the template of path for service, or OtherRoute when the
// service's cap is reached.
func (r *Routes) Route(service, path string) string {
	t := Template(path)
	r.mu.Lock()
	defer r.mu.Unlock()
	set, ok := r.services[service]
	if !ok {
		if len(r.services) >= r.maxServices {
			r.folds.Add(1)
			return OtherRoute
		}
		set = map[string]struct{}{}
		r.services[service] = set
	}
	if _, ok := set[t]; ok {
		return t
	}
	if len(set) >= r.maxPerService {
		r.folds.Add(1)
		return OtherRoute
	}
	set[t] = struct{}{}
	return t
}

// Folds is the number of routes folded into OtherRoute so far.
func (r *Routes) Folds() uint64 { return r.folds.Load() }

// Forget drops a service's routes (the service is gone), freeing its slot.
func (r *Routes) Forget(service string) {
	r.mu.Lock()
	delete(r.services, service)
	r.mu.Unlock()
}
