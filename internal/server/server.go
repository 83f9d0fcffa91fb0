// Package server is vigil's HTTP endpoint: /metrics, /healthz and the API
// routes other packages mount, served through the Prometheus
// exporter-toolkit so TLS and basic auth come from a standard web config.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// Server serves the agent's HTTP endpoints.
type Server struct {
	Mux      *http.ServeMux
	listener net.Listener
	http     *http.Server
	webCfg   string
	log      *slog.Logger
}

// Listen binds addr now, so a taken port is reported before any probe is
// attached. webConfigFile may be empty.
func Listen(addr, webConfigFile string, gatherer prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	if webConfigFile != "" {
		if err := web.Validate(webConfigFile); err != nil {
			return nil, fmt.Errorf("web config %s: %w", webConfigFile, err)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("web.listen-address %s: port already in use (another vigil or exporter?); choose another with --web.listen-address", addr)
		}
		return nil, fmt.Errorf("web.listen-address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<html><head><title>vigil</title></head><body><h1>vigil</h1>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></p></body></html>`))
	})
	return &Server{
		Mux:      mux,
		listener: l,
		http:     &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		webCfg:   webConfigFile,
		log:      log,
	}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	cfg := s.webCfg
	flags := &web.FlagConfig{WebConfigFile: &cfg}
	err := web.Serve(s.listener, s.http, flags, s.log)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops serving, waiting for in-flight requests up to ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
