package alert

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Webhook posts alerts in the JSON shape Alertmanager uses for its webhook
// receiver (version "4"), so existing webhook consumers accept vigil's
// alerts directly. Each batch becomes one message; status is "firing" if any
// alert in it fires.
type Webhook struct {
	name        string
	url         string
	headers     map[string]string
	client      *http.Client
	externalURL string
	now         func() time.Time
}

// NewWebhook returns a webhook notifier posting to target. externalURL is
// reported as "externalURL" in the payload (vigil's own address, may be
// empty).
func NewWebhook(target, externalURL string, headers map[string]string, client *http.Client) (*Webhook, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want http(s)://host[:port]/path", target)
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Webhook{name: "webhook:" + u.Host + u.Path, url: u.String(), headers: headers,
		client: client, externalURL: externalURL, now: time.Now}, nil
}

// Name implements Notifier.
func (w *Webhook) Name() string { return w.name }

// WebhookMessage is the payload; field names follow Alertmanager's.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert in a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, alerts []Alert) error {
	return postJSON(ctx, w.client, w.url, w.headers, w.message(alerts))
}

func (w *Webhook) message(alerts []Alert) WebhookMessage {
	now := w.now()
	msg := WebhookMessage{
		Version: "4", Status: "resolved", Receiver: "vigil",
		GroupLabels: map[string]string{}, ExternalURL: w.externalURL,
	}
	for i, a := range alerts {
		status := "firing"
		if a.Resolved(now) {
			status = "resolved"
		} else {
			msg.Status = "firing"
		}
		msg.Alerts = append(msg.Alerts, WebhookAlert{
			Status: status, Labels: a.Labels, Annotations: nonNil(a.Annotations),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL,
			Fingerprint: fmt.Sprintf("%016x", uint64(a.Fingerprint())),
		})
		if i == 0 {
			msg.CommonLabels = maps.Clone(a.Labels)
			msg.CommonAnnotations = maps.Clone(nonNil(a.Annotations))
			continue
		}
		keepCommon(msg.CommonLabels, a.Labels)
		keepCommon(msg.CommonAnnotations, a.Annotations)
	}
	msg.GroupKey = "{}:" + strconv.Quote(msg.CommonLabels["alertname"])
	return msg
}

func keepCommon(common, m map[string]string) {
	for k, v := range common {
		if m[k] != v {
			delete(common, k)
		}
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
