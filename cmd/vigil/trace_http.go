package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/config"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/probe/l7"
)

func init() { tracers = append(tracers, httpTracer) }

// httpFilter is what `vigil trace http` filters on besides pid and container.
type httpFilter struct {
	method      string
	status      string
	minDuration time.Duration
	// statusLo..statusHi is the accepted status range, from status.
	statusLo, statusHi int
}

// parseStatus accepts "500" or a class "5xx".
func (f *httpFilter) parseStatus() error {
	s := strings.ToLower(f.status)
	if s == "" {
		return nil
	}
	if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
		f.statusLo = int(s[0]-'0') * 100
		f.statusHi = f.statusLo + 99
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 999 {
		return fmt.Errorf("--status %q: want a status code (500) or a class (5xx)", f.status)
	}
	f.statusLo, f.statusHi = n, n
	return nil
}

func (f *httpFilter) match(ev event.Event) bool {
	e, ok := ev.(*httpflow.Exchange)
	if !ok {
		return false
	}
	if f.method != "" && !strings.EqualFold(e.Method, f.method) {
		return false
	}
	if f.statusHi != 0 && (e.Status < f.statusLo || e.Status > f.statusHi) {
		return false
	}
	return time.Duration(e.DurationNS) >= f.minDuration
}

var httpFilters = &httpFilter{}

var httpTracer = tracer{
	name:  "http",
	help:  "Trace HTTP/1.x requests (server and client side) parsed from the l7 probe's connection data: method, path, status, duration, sizes. Header values are never shown unless l7.http.headers lists them.",
	probe: l7.Name,
	kinds: []event.Kind{httpflow.KindHTTP},
	flags: func(cmd *kingpin.CmdClause) func(event.Event) bool {
		f := httpFilters
		cmd.Flag("method", "Only requests with this method (GET, POST, ...).").StringVar(&f.method)
		cmd.Flag("status", "Only responses with this status code (500) or class (5xx).").StringVar(&f.status)
		cmd.Flag("min-duration", "Only exchanges that took at least this long (e.g. 10ms).").DurationVar(&f.minDuration)
		return f.match
	},
	configure: func(cfg *config.Config, o *traceOpts) error {
		if err := httpFilters.parseStatus(); err != nil {
			return err
		}
		if !cfg.L7.HTTP.Enabled {
			return fmt.Errorf("%s: l7.http.enabled is false: no http events are derived", cfg.Source)
		}
		// --pid narrows the capture in the kernel too.
		if pc, ok := cfg.ProbeConfigs[l7.Name].(*l7.Config); ok && o.pid != 0 {
			pc.PIDs = []uint32{o.pid}
		}
		return nil
	},
}
