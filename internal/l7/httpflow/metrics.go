package httpflow

import (
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/l7/http"
	"github.com/vigilproject/vigil/internal/metrics"
)

// durationBuckets are the OpenTelemetry semantic conventions' advisory
// buckets for HTTP request durations, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// sizeBuckets: 64 B to 16 MiB by powers of 4 (semconv gives none).
var sizeBuckets = prometheus.ExponentialBuckets(64, 4, 10)

// knownMethods are semconv's http.request.method values; others are "_OTHER".
var knownMethods = map[string]bool{"CONNECT": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true,
	"PATCH": true, "POST": true, "PUT": true, "TRACE": true, "QUERY": true}

// Metric names (OpenTelemetry semantic conventions in Prometheus form).
const (
	serverDuration = "http_server_request_duration_seconds"
	clientDuration = "http_client_request_duration_seconds"
)

// side holds one side's (server or client) histograms and label caps.
type side struct {
	duration, reqBody, respBody *prometheus.HistogramVec
	metric                      string // duration metric name, for fold counters
	services, addrs             *metrics.LabelCap
	series                      map[string]struct{}
	seriesFolded                prometheus.Counter
	routeFolded                 prometheus.Counter
}

// red is the RED metrics of http events: rate and errors are the
// histograms' counts by status, duration their buckets.
type red struct {
	cfg            Config
	routes         *http.Routes
	server, client side
}

func newRED(cfg Config, labelLimit int) *red {
	r := &red{cfg: cfg, routes: http.NewRoutes(cfg.MaxRoutesPerService, 0)}
	mk := func(metric, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metric, Help: help, Buckets: buckets}, labels)
	}
	srv := []string{"http_request_method", "http_response_status_code", "http_route", "service"}
	cli := []string{"http_request_method", "http_response_status_code", "http_route", "server_address", "server_port", "service"}
	mkSide := func(name string, labels []string) side {
		dur := "http_" + name + "_request_duration_seconds"
		return side{
			metric:       dur,
			duration:     mk(dur, "Duration of HTTP "+name+" requests, first request byte to last response byte, seen by the "+name+" process.", durationBuckets, labels),
			reqBody:      mk("http_"+name+"_request_body_size_bytes", "Body size of HTTP "+name+" requests.", sizeBuckets, labels),
			respBody:     mk("http_"+name+"_response_body_size_bytes", "Body size of HTTP "+name+" responses.", sizeBuckets, labels),
			services:     metrics.NewLabelCap(dur, "service", labelLimit),
			addrs:        metrics.NewLabelCap(dur, "server_address", labelLimit),
			series:       map[string]struct{}{},
			seriesFolded: metrics.Folded.WithLabelValues(dur, "series"),
			routeFolded:  metrics.Folded.WithLabelValues(dur, "http_route"),
		}
	}
	r.server = mkSide("server", srv)
	r.client = mkSide("client", cli)
	return r
}

func (r *red) collectors() []prometheus.Collector {
	var out []prometheus.Collector
	for _, s := range []*side{&r.server, &r.client} {
		out = append(out, s.duration, s.reqBody, s.respBody)
	}
	return out
}

// observe records one exchange. It is called from one goroutine.
func (r *red) observe(e *Exchange) {
	s, client := &r.server, false
	if e.Side == "client" {
		s, client = &r.client, true
	}
	method := e.Method
	if !knownMethods[method] {
		method = "_OTHER"
	}
	service := s.services.Value(e.Service)
	// Routes are capped per service and side: a client's calls and a
	// server's routes are different sets.
	route := r.routes.Route(e.Side+"\x00"+service, e.Path)
	if route == http.OtherRoute {
		s.routeFolded.Inc()
	}
	status := strconv.Itoa(e.Status)
	labels := []string{method, status, route, service}
	if client {
		labels = []string{method, status, route, s.addrs.Value(serverAddress(e)), strconv.Itoa(int(e.RemotePort)), service}
	}
	key := strings.Join(labels, "\x00")
	if _, ok := s.series[key]; !ok {
		if len(s.series) >= r.cfg.MaxSeries {
			// Past the cap the unbounded labels fold; method, status and
			// the capped service stay, so the fold itself is bounded.
			s.seriesFolded.Inc()
			labels[2] = metrics.Other
			if client {
				labels[3], labels[4] = metrics.Other, metrics.Other
			}
		} else {
			s.series[key] = struct{}{}
		}
	}
	s.duration.WithLabelValues(labels...).Observe(float64(e.DurationNS) / 1e9)
	s.reqBody.WithLabelValues(labels...).Observe(float64(e.RequestBody))
	s.respBody.WithLabelValues(labels...).Observe(float64(e.ResponseBody))
}

// serverAddress is the server the client asked for: the Host header's host
// (semconv's server.address), else the connection's remote address.
func serverAddress(e *Exchange) string {
	h := e.Host
	if h == "" {
		return e.RemoteAddr
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}

// RunMetrics records every http event of bus into the RED metrics until
// ctx ends. Its subscription is what keeps the deriver running in an agent
// that serves metrics.
func (f *Flow) RunMetrics(ctx context.Context, bus *event.Bus) {
	sub := bus.Subscribe("http-metrics", f.cfg.QueueSize, KindHTTP)
	defer bus.Unsubscribe(sub)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-sub.C():
			if e, ok := ev.(*Exchange); ok {
				f.red.observe(e)
			}
		}
	}
}

// Collectors returns the RED histograms and the deriver's own counters.
func (f *Flow) Collectors() []prometheus.Collector {
	return append(f.red.collectors(), flowCollector{f})
}

// flowCollector reports the parser statistics and the stream table.
type flowCollector struct{ f *Flow }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	exchangesDesc  = desc("vigil_http_exchanges_total", "HTTP request/response pairs parsed (each side of a connection counts).")
	truncatedDesc  = desc("vigil_http_exchanges_truncated_total", "Exchanges published with truncated=true (part not captured or not parsed).")
	notHTTPDesc    = desc("vigil_http_streams_not_http_total", "Streams rejected by HTTP detection (binary or other protocols); their data is then ignored.")
	upgradedDesc   = desc("vigil_http_streams_upgraded_total", "Streams that left HTTP (101 Switching Protocols, CONNECT).")
	inFlightDesc   = desc("vigil_http_requests_dropped_total", "Requests dropped because too many were waiting for their response (pipelining deeper than 16).")
	orphanDesc     = desc("vigil_http_orphan_responses_total", "Responses with no waiting request (its request was not seen).")
	unansweredDesc = desc("vigil_http_unanswered_requests_total", "Requests still waiting for a response when their stream was closed.")
	overCapDesc    = desc("vigil_http_headers_over_cap_total", "Messages whose header block was longer than the parsed bound.")
	longLinesDesc  = desc("vigil_http_long_lines_total", "Start or header lines cut to the line buffer.")
	gapsDesc       = desc("vigil_http_capture_gaps_total", "Chunks whose captured prefix was shorter than the bytes transferred.")
	lostSyncDesc   = desc("vigil_http_lost_sync_total", "Times message framing was lost and the parser waited for the next start line.")
	streamsDesc    = desc("vigil_http_streams", "Connection streams the HTTP deriver tracks now.")
	streamsMaxDesc = desc("vigil_http_streams_max", "Bound of the stream table (l7.http.max_streams).")
	closedDesc     = desc("vigil_http_streams_closed_total", "Streams closed by the deriver, by reason: idle (no data for idle_timeout), reused (the fd now names another connection), evicted (table full).", "reason")
	skippedDesc    = desc("vigil_http_chunks_skipped_total", "Chunks skipped because they came before the first request byte of their stream (a response to a request not seen).")
)

func (c flowCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{exchangesDesc, truncatedDesc, notHTTPDesc, upgradedDesc, inFlightDesc, orphanDesc,
		unansweredDesc, overCapDesc, longLinesDesc, gapsDesc, lostSyncDesc, streamsDesc, streamsMaxDesc, closedDesc, skippedDesc} {
		ch <- d
	}
}

func (c flowCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.stats.Snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(exchangesDesc, s.Exchanges)
	counter(truncatedDesc, s.Truncated)
	counter(notHTTPDesc, s.NotHTTP)
	counter(upgradedDesc, s.Upgraded)
	counter(inFlightDesc, s.InFlightDropped)
	counter(orphanDesc, s.OrphanResponses)
	counter(unansweredDesc, s.Unanswered)
	counter(overCapDesc, s.HeadersOverCap)
	counter(longLinesDesc, s.LongLines)
	counter(gapsDesc, s.CaptureGaps)
	counter(lostSyncDesc, s.LostSync)
	counter(skippedDesc, c.f.skipped.Load())
	for i, n := range closeReasonNames {
		counter(closedDesc, c.f.closed[i].Load(), n)
	}
	ch <- prometheus.MustNewConstMetric(streamsDesc, prometheus.GaugeValue, float64(c.f.streams.Load().Load()))
	ch <- prometheus.MustNewConstMetric(streamsMaxDesc, prometheus.GaugeValue, float64(c.f.cfg.MaxStreams))
}
