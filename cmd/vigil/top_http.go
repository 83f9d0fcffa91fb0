package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilproject/vigil/internal/agent"
	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/httpflow"
	"github.com/vigilproject/vigil/internal/probe/l7"
	"github.com/vigilproject/vigil/internal/schema"
	"github.com/vigilproject/vigil/internal/servicemap"
	"github.com/vigilproject/vigil/internal/servicemap/service"
)

func init() {
	toppers = append(toppers, topper{
		name: "http",
		help: "Live HTTP RED view per (service, side, method, route) or per service-map edge: requests/s, errors %, p50/p99 latency, bytes/s (loads the l7 probe).",
		setup: func(cmd *kingpin.CmdClause) func() error {
			o := &topHTTPOpts{}
			cmd.Flag("config", "Config file for probe settings (defaults when omitted).").Short('c').StringVar(&o.config)
			cmd.Flag("by", "Rows per route (service, side, method, route) or per edge (client service → server, both sides of a request joined).").Default("route").EnumVar(&o.by, "route", "edge")
			cmd.Flag("sort", "Order: rps, errors (error ratio), p99, bytes.").Default("rps").EnumVar(&o.sort, "rps", "errors", "p99", "bytes")
			cmd.Flag("interval", "Refresh interval; by route each view covers the last interval; by edge rates cover the interval and quantiles the last minute.").Short('i').Default("1s").DurationVar(&o.interval)
			cmd.Flag("top", "Rows shown.").Default("20").IntVar(&o.top)
			cmd.Flag("once", "Print one interval and exit.").BoolVar(&o.once)
			cmd.Flag("output", "Output format: table or json.").Short('o').Default("table").EnumVar(&o.output, "table", "json")
			cmd.Flag("pid", "Only requests seen by this process id.").Short('p').Uint32Var(&o.pid)
			cmd.Flag("queue", "http events buffered between the deriver and the view; overflow is counted and reported.").Default("16384").IntVar(&o.queue)
			return func() error { return runTopHTTP(o) }
		},
	})
}

type topHTTPOpts struct {
	config   string
	by, sort string
	interval time.Duration
	top      int
	once     bool
	output   string
	pid      uint32
	queue    int
}

// httpTopRow is one line: by route the service, side, method and route; by
// edge the client and server node ids.
type httpTopRow struct {
	Service           string  `json:"service,omitempty"`
	Side              string  `json:"side,omitempty"`
	Method            string  `json:"method,omitempty"`
	Route             string  `json:"route,omitempty"`
	Client            string  `json:"client,omitempty"`
	Server            string  `json:"server,omitempty"`
	Requests          uint64  `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	ErrorRatio        float64 `json:"error_ratio"` // 5xx / requests
	P50Seconds        float64 `json:"p50_seconds"`
	P99Seconds        float64 `json:"p99_seconds"`
	BytesPerSecond    float64 `json:"bytes_per_second"` // request + response
}

type httpTopView struct {
	Time            time.Time    `json:"time"`
	IntervalSeconds float64      `json:"interval_seconds"`
	By              string       `json:"by"`
	Sort            string       `json:"sort"`
	Rows            []httpTopRow `json:"rows"`
	// Folded counts requests of routes beyond the view's table, shown as
	// one "other" row.
	Folded uint64 `json:"folded,omitempty"`
}

func runTopHTTP(o *topHTTPOpts) error {
	if err := checkRefresh(o.interval, "top", o.top); err != nil {
		return err
	}
	if o.queue < 1 {
		return fmt.Errorf("--queue %d: must be at least 1", o.queue)
	}
	if _, ok := schema.Lookup(httpflow.KindHTTP); !ok {
		return errors.New("top http: this build has no http event kind (the HTTP deriver of the l7 probe is not built in)")
	}
	cfg, err := loadConfig(o.config)
	if err != nil {
		return err
	}
	pc, ok := cfg.ProbeConfigs[l7.Name]
	if !ok {
		return fmt.Errorf("no configuration for probe %s", l7.Name)
	}
	if err := pc.Validate(); err != nil {
		return fmt.Errorf("top http: %w", err)
	}
	cfg.Log.Level = "warn"
	a, err := agent.Open(cfg, newLogger(cfg.Log), agent.Options{Probes: withProcessProbe(cfg, []string{l7.Name})})
	if err != nil {
		return err
	}
	sub := a.Bus.Subscribe("top-http", o.queue, httpflow.KindHTTP)
	lost := newLossReporter(a, sub, "--queue or probes.l7.ringbuf_size")
	return a.Main(func(ctx context.Context) error {
		defer lost.summary(os.Stderr)
		return topHTTP(ctx, sub, lost, o)
	})
}

func topHTTP(ctx context.Context, sub *event.Subscription, lost *lossReporter, o *topHTTPOpts) error {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	routes := newHTTPRoutes(httpTopMaxRoutes)
	var edges *httpEdges
	if o.by == "edge" {
		cfg := servicemap.DefaultConfig()
		cfg.JoinWait = min(o.interval, time.Second)
		edges = &httpEdges{m: servicemap.New(cfg, nil)}
	}
	t := time.NewTicker(o.interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				return nil
			}
			x, ok := ev.(*httpflow.Exchange)
			if !ok || (o.pid != 0 && x.PID != o.pid) {
				continue
			}
			if edges != nil {
				edges.m.Add(x, time.Now())
			} else {
				routes.add(x)
			}
		case now := <-t.C:
			secs := now.Sub(last).Seconds()
			view := httpTopView{Time: now, IntervalSeconds: secs, By: o.by, Sort: o.sort}
			if edges != nil {
				view.Rows = edges.rows(now, secs)
			} else {
				view.Rows, view.Folded = routes.rows(secs), routes.folded
				routes = newHTTPRoutes(httpTopMaxRoutes)
			}
			sortHTTPRows(view.Rows, o.sort)
			if len(view.Rows) > o.top {
				view.Rows = view.Rows[:o.top]
			}
			last = now
			for _, r := range lost.check(os.Stderr) {
				if o.output == "json" {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
			}
			if o.output == "json" {
				if err := enc.Encode(view); err != nil {
					return err
				}
			} else {
				if !o.once {
					out.WriteString("\033[H\033[2J") // home, clear screen
				}
				printHTTPTable(out, view)
			}
			out.Flush()
			if o.once {
				return nil
			}
		}
	}
}

// httpTopMaxRoutes bounds the rows one interval aggregates; later keys
// fold into "other".
const httpTopMaxRoutes = 10000

type httpRouteKey struct{ service, side, method, route string }

type httpRouteAgg struct {
	requests, errors, bytes uint64
	latency                 servicemap.Hist
}

// httpRoutes aggregates one interval's exchanges per route.
type httpRoutes struct {
	max    int
	m      map[httpRouteKey]*httpRouteAgg
	folded uint64
}

func newHTTPRoutes(max int) *httpRoutes {
	return &httpRoutes{max: max, m: map[httpRouteKey]*httpRouteAgg{}}
}

func (r *httpRoutes) add(x *httpflow.Exchange) {
	k := httpRouteKey{service: service.Of(&x.Process).Name, side: x.Side, method: x.Method, route: x.Route}
	a := r.m[k]
	if a == nil {
		if len(r.m) >= r.max {
			r.folded++
			k = httpRouteKey{service: "other", side: "-", method: "-", route: "-"}
			if a = r.m[k]; a == nil {
				a = &httpRouteAgg{}
				r.m[k] = a
			}
		} else {
			a = &httpRouteAgg{}
			r.m[k] = a
		}
	}
	a.requests++
	if x.Status >= 500 {
		a.errors++
	}
	a.bytes += uint64(max(x.RequestBytes, 0) + max(x.ResponseBytes, 0))
	a.latency.Add(x.DurationNS)
}

func (r *httpRoutes) rows(secs float64) []httpTopRow {
	rows := make([]httpTopRow, 0, len(r.m))
	for k, a := range r.m {
		rows = append(rows, httpTopRow{
			Service: k.service, Side: k.side, Method: k.method, Route: k.route,
			Requests: a.requests, RequestsPerSecond: float64(a.requests) / secs,
			ErrorRatio: float64(a.errors) / float64(a.requests),
			P50Seconds: a.latency.Quantile(0.5) / 1e9, P99Seconds: a.latency.Quantile(0.99) / 1e9,
			BytesPerSecond: float64(a.bytes) / secs,
		})
	}
	return rows
}

// httpEdges is the edge view: a service map of the http events, with rates
// from the growth of its counters between refreshes.
type httpEdges struct {
	m    *servicemap.Map
	prev map[[2]string]servicemap.Edge
}

func (e *httpEdges) rows(now time.Time, secs float64) []httpTopRow {
	e.m.Flush(now)
	all := e.m.Snapshot(now, servicemap.Query{Protocol: servicemap.ProtoHTTP})
	recent := e.m.Snapshot(now, servicemap.Query{Protocol: servicemap.ProtoHTTP, Window: time.Minute})
	lat := map[[2]string]servicemap.Latency{}
	for _, x := range recent.Edges {
		lat[[2]string{x.Client, x.Server}] = x.Latency
	}
	cur := map[[2]string]servicemap.Edge{}
	var rows []httpTopRow
	for _, x := range all.Edges {
		k := [2]string{x.Client, x.Server}
		cur[k] = x
		p := e.prev[k]
		d := x.Requests - min(p.Requests, x.Requests)
		if d == 0 {
			continue
		}
		errs := x.Errors - min(p.Errors, x.Errors)
		bytes := x.RequestBytes + x.ResponseBytes - min(p.RequestBytes+p.ResponseBytes, x.RequestBytes+x.ResponseBytes)
		rows = append(rows, httpTopRow{
			Client: x.Client, Server: x.Server, Requests: d, RequestsPerSecond: float64(d) / secs,
			ErrorRatio: float64(errs) / float64(d),
			P50Seconds: lat[k].P50Seconds, P99Seconds: lat[k].P99Seconds,
			BytesPerSecond: float64(bytes) / secs,
		})
	}
	e.prev = cur
	return rows
}

func sortHTTPRows(rows []httpTopRow, by string) {
	key := func(r httpTopRow) float64 {
		switch by {
		case "errors":
			return r.ErrorRatio
		case "p99":
			return r.P99Seconds
		case "bytes":
			return r.BytesPerSecond
		}
		return r.RequestsPerSecond
	}
	slices.SortFunc(rows, func(a, b httpTopRow) int {
		if c := cmp.Compare(key(b), key(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Requests, a.Requests); c != 0 {
			return c
		}
		return cmp.Compare(a.Service+a.Side+a.Method+a.Route+a.Client+a.Server, b.Service+b.Side+b.Method+b.Route+b.Client+b.Server)
	})
}

func printHTTPTable(w io.Writer, v httpTopView) {
	fmt.Fprintf(w, "%s  HTTP requests during the last %.1fs, by %s, sorted by %s\n\n", v.Time.Format("15:04:05"), v.IntervalSeconds, v.By, v.Sort)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if v.By == "edge" {
		fmt.Fprintln(tw, "CLIENT\tSERVER\tREQ/S\tERR%\tP50_MS(1m)\tP99_MS(1m)\tKB/S")
	} else {
		fmt.Fprintln(tw, "SERVICE\tSIDE\tMETHOD\tROUTE\tREQ/S\tERR%\tP50_MS\tP99_MS\tKB/S")
	}
	for _, r := range v.Rows {
		nums := []string{
			strconv.FormatFloat(r.RequestsPerSecond, 'f', 1, 64), strconv.FormatFloat(r.ErrorRatio*100, 'f', 1, 64),
			strconv.FormatFloat(r.P50Seconds*1e3, 'f', 3, 64), strconv.FormatFloat(r.P99Seconds*1e3, 'f', 3, 64),
			strconv.FormatFloat(r.BytesPerSecond/1024, 'f', 1, 64),
		}
		var line []string
		if v.By == "edge" {
			line = append([]string{r.Client, r.Server}, nums...)
		} else {
			line = append([]string{r.Service, r.Side, r.Method, r.Route}, nums...)
		}
		fmt.Fprintln(tw, strings.Join(line, "\t"))
	}
	tw.Flush()
	if v.Folded > 0 {
		fmt.Fprintf(w, "(%d requests of routes beyond %d rows folded into \"other\")\n", v.Folded, httpTopMaxRoutes)
	}
	fmt.Fprintln(w)
}
