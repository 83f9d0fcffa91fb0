package http

import "sync/atomic"

// Stats counts what the parser saw, dropped and could not fully read. It
// may be shared by many connections (all fields are atomic); the caller
// exports it as metrics, the parser registers nothing.
type Stats struct {
	// Exchanges is the number of request/response pairs returned.
	Exchanges atomic.Uint64
	// NotHTTP counts connections rejected by protocol detection.
	NotHTTP atomic.Uint64
	// Upgraded counts connections that left HTTP (101 Switching Protocols,
	// a successful CONNECT); their later bytes are ignored.
	Upgraded atomic.Uint64
	// InFlightDropped counts requests dropped because MaxInFlight requests
	// were already waiting for their response (pipelining deeper than the cap).
	InFlightDropped atomic.Uint64
	// OrphanResponses counts responses with no waiting request (the request
	// was dropped or happened before capture started); they are not returned.
	OrphanResponses atomic.Uint64
	// Unanswered counts requests still waiting when the connection closed.
	Unanswered atomic.Uint64
	// HeadersOverCap counts messages whose header block was longer than
	// MaxHeaderBytes: the lines beyond it were scanned only for framing.
	HeadersOverCap atomic.Uint64
	// LongLines counts start or header lines cut to the line buffer size
	// (a long path, a huge cookie).
	LongLines atomic.Uint64
	// CaptureGaps counts chunks whose captured prefix was shorter than the
	// real length (bytes counted from the declared length, not seen).
	CaptureGaps atomic.Uint64
	// LostSync counts times the message framing was lost (uncaptured bytes
	// inside headers or chunk framing, malformed framing); the stream then
	// waits for a chunk that starts with a new start line.
	LostSync atomic.Uint64
	// Truncated counts returned exchanges that carry Truncated=true.
	Truncated atomic.Uint64
}

// Snapshot is a plain copy of Stats, handy for tests and exporters.
type Snapshot struct {
	Exchanges, NotHTTP, Upgraded, InFlightDropped, OrphanResponses, Unanswered,
	HeadersOverCap, LongLines, CaptureGaps, LostSync, Truncated uint64
}

// Snapshot reads every counter once.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Exchanges:       s.Exchanges.Load(),
		NotHTTP:         s.NotHTTP.Load(),
		Upgraded:        s.Upgraded.Load(),
		InFlightDropped: s.InFlightDropped.Load(),
		OrphanResponses: s.OrphanResponses.Load(),
		Unanswered:      s.Unanswered.Load(),
		HeadersOverCap:  s.HeadersOverCap.Load(),
		LongLines:       s.LongLines.Load(),
		CaptureGaps:     s.CaptureGaps.Load(),
		LostSync:        s.LostSync.Load(),
		Truncated:       s.Truncated.Load(),
	}
}
