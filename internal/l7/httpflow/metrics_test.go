package httpflow

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/metrics"
)

func exchange(side, service, method, path string, status int) *Exchange {
	return &Exchange{Header: event.Header{Process: event.Process{Comm: service}}, Side: side, Service: service,
		Method: method, Path: path, Status: status, DurationNS: 2e6, RemoteAddr: "10.0.0.1", RemotePort: 8080, Host: "api:8080"}
}

// Routes fold per service past max_routes_per_service, label sets fold past
// max_series, and both are counted; method, status and service stay.
func TestREDCaps(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRoutesPerService, cfg.MaxSeries = 3, 10
	r := newRED(cfg, 100)
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.collectors()...)
	routeFolds := metrics.Folded.WithLabelValues(serverDuration, "http_route")
	seriesFolds := metrics.Folded.WithLabelValues(serverDuration, "series")
	r0, s0 := testutil.ToFloat64(routeFolds), testutil.ToFloat64(seriesFolds)
	for i := 0; i < 5; i++ {
		r.observe(exchange("server", "api", "GET", fmt.Sprintf("/r%d/7", i), 200))
	}
	if got := testutil.ToFloat64(routeFolds) - r0; got != 2 {
		t.Errorf("%v route folds, want 2", got)
	}
	if n := testutil.CollectAndCount(r.server.duration); n != 4 { // /r0..2/{id} and other
		t.Errorf("%d series, want 4", n)
	}
	// 20 statuses on one route: the series cap folds the route of the
	// 7 past the cap into "other" (method and status stay).
	for s := 0; s < 20; s++ {
		r.observe(exchange("server", "api", "BREW", "/r0/7", 500+s))
	}
	if got := testutil.ToFloat64(seriesFolds) - s0; got != 14 {
		t.Errorf("%v series folds, want 14", got)
	}
	// 4 + 6 admitted, 14 folded each with its own status: the fold keeps
	// method (_OTHER) and status, so it stays bounded by their sets.
	if n := testutil.CollectAndCount(r.server.duration); n != 24 {
		t.Errorf("%d series, want 24", n)
	}
	if !hasSeries(t, reg, serverDuration, map[string]string{"http_request_method": "_OTHER", "http_response_status_code": "519",
		"http_route": "other", "service": "api"}) {
		t.Error("no folded series for status 519")
	}
	// The client side keeps the server address from the Host header.
	r.observe(exchange("client", "web", "GET", "/users/1", 200))
	if n := testutil.CollectAndCount(r.client.duration); n != 1 {
		t.Errorf("%d client series", n)
	}
	lint, err := testutil.CollectAndLint(r.client.duration)
	if err != nil || len(lint) != 0 {
		t.Errorf("lint: %v %v", err, lint)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != clientDuration {
			continue
		}
		got := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		want := map[string]string{"http_request_method": "GET", "http_response_status_code": "200", "http_route": "/users/{id}",
			"server_address": "api", "server_port": "8080", "service": "web"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client labels %v, want %v", got, want)
		}
	}
}

func hasSeries(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return true
			}
		}
	}
	return false
}
