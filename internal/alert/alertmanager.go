package alert

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Alertmanager posts alerts to one Alertmanager through API v2
// (POST /api/v2/alerts). Configure one per Alertmanager instance: like
// Prometheus, vigil sends every alert to every Alertmanager of a cluster and
// the cluster deduplicates notifications.
type Alertmanager struct {
	name    string
	url     string
	headers map[string]string
	client  *http.Client
}

// NewAlertmanager returns a notifier for the Alertmanager at base (scheme,
// host and optional path prefix, e.g. "http://127.0.0.1:9093"). headers are
// added to every request (e.g. Authorization). A nil client means
// http.DefaultClient; per-attempt timeouts come from the dispatcher.
func NewAlertmanager(base string, headers map[string]string, client *http.Client) (*Alertmanager, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alertmanager url %q: want http(s)://host:port[/prefix]", base)
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Alertmanager{
		name:    "alertmanager:" + u.Host,
		url:     strings.TrimRight(u.String(), "/") + "/api/v2/alerts",
		headers: headers,
		client:  client,
	}, nil
}

// Name implements Notifier.
func (a *Alertmanager) Name() string { return a.name }

// Notify implements Notifier.
func (a *Alertmanager) Notify(ctx context.Context, alerts []Alert) error {
	return postJSON(ctx, a.client, a.url, a.headers, alerts)
}
