package rules

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigilproject/vigil/internal/alert"
)

// The JSON shapes below follow Prometheus' HTTP API (/api/v1/rules and
// /api/v1/alerts), so Grafana and scripts written for Prometheus read them.

type apiResponse struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

// APIAlert is one alert as in Prometheus' /api/v1/alerts.
type APIAlert struct {
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	State           string            `json:"state"`
	ActiveAt        *time.Time        `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time        `json:"keepFiringSince,omitempty"`
	Value           string            `json:"value"`
}

type apiRuleGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

type apiAlertingRule struct {
	State          string            `json:"state"`
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Duration       float64           `json:"duration"`
	KeepFiringFor  float64           `json:"keepFiringFor"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations"`
	Alerts         []APIAlert        `json:"alerts"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError,omitempty"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	Type           string            `json:"type"`
}

type apiRecordingRule struct {
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Labels         map[string]string `json:"labels,omitempty"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError,omitempty"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	Type           string            `json:"type"`
}

// RulesHandler serves GET /api/v1/rules; e may be nil (rules disabled).
func RulesHandler(e *Engine) http.Handler {
	if e == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: map[string]any{"groups": []any{}}})
		})
	}
	return e.RulesHandler()
}

// AlertsHandler serves GET /api/v1/alerts; e may be nil (rules disabled),
// then the dispatcher's active alerts are listed.
func AlertsHandler(e *Engine, d *alert.Dispatcher) http.Handler {
	if e == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: map[string]any{"alerts": dispatcherAlerts(d)}})
		})
	}
	return e.AlertsHandler()
}

// RulesHandler serves GET /api/v1/rules (?type=alert|record).
func (e *Engine) RulesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ := r.URL.Query().Get("type")
		if typ != "" && typ != "alert" && typ != "record" {
			writeJSON(w, http.StatusBadRequest, map[string]string{
				"status": "error", "errorType": "bad_data", "error": `type must be "alert" or "record"`})
			return
		}
		groups := []apiRuleGroup{}
		for _, g := range e.mgr.RuleGroups() {
			ag := apiRuleGroup{
				Name: g.Name(), File: g.File(), Rules: []any{},
				Interval: g.Interval().Seconds(), Limit: g.Limit(),
				EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation(),
			}
			for _, rl := range g.Rules() {
				errStr := ""
				if err := rl.LastError(); err != nil {
					errStr = err.Error()
				}
				switch rl := rl.(type) {
				case *promrules.AlertingRule:
					if typ == "record" {
						continue
					}
					ag.Rules = append(ag.Rules, apiAlertingRule{
						State: rl.State().String(), Name: rl.Name(), Query: rl.Query().String(),
						Duration: rl.HoldDuration().Seconds(), KeepFiringFor: rl.KeepFiringFor().Seconds(),
						Labels: rl.Labels().Map(), Annotations: rl.Annotations().Map(),
						Alerts: ruleAlerts(rl), Health: string(rl.Health()), LastError: errStr,
						EvaluationTime: rl.GetEvaluationDuration().Seconds(),
						LastEvaluation: rl.GetEvaluationTimestamp(), Type: "alerting",
					})
				case *promrules.RecordingRule:
					if typ == "alert" {
						continue
					}
					ag.Rules = append(ag.Rules, apiRecordingRule{
						Name: rl.Name(), Query: rl.Query().String(), Labels: rl.Labels().Map(),
						Health: string(rl.Health()), LastError: errStr,
						EvaluationTime: rl.GetEvaluationDuration().Seconds(),
						LastEvaluation: rl.GetEvaluationTimestamp(), Type: "recording",
					})
				}
			}
			if len(ag.Rules) > 0 || typ == "" {
				groups = append(groups, ag)
			}
		}
		writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: map[string]any{"groups": groups}})
	})
}

// AlertsHandler serves GET /api/v1/alerts: pending and firing alerts of the
// metric rules, plus any other alert the dispatcher is tracking (event rules,
// internal alerts) as firing.
func (e *Engine) AlertsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: map[string]any{"alerts": e.Alerts()}})
	})
}

// Alerts lists active alerts in the API shape.
func (e *Engine) Alerts() []APIAlert {
	out := []APIAlert{}
	for _, r := range e.mgr.AlertingRules() {
		out = append(out, ruleAlerts(r)...)
	}
	if e.opts.Dispatcher == nil {
		return out
	}
	// Alerts from other producers (event rules, internal) are listed as
	// firing; metric-rule alerts are already listed above.
	var others []string
	for _, s := range e.opts.Dispatcher.Sources() {
		if s != Source {
			others = append(others, s)
		}
	}
	if len(others) == 0 {
		return out
	}
	return append(out, dispatcherAlerts(e.opts.Dispatcher, others...)...)
}

func dispatcherAlerts(d *alert.Dispatcher, sources ...string) []APIAlert {
	out := []APIAlert{}
	if d == nil {
		return out
	}
	for _, a := range d.Active(sources...) {
		at := a.StartsAt
		out = append(out, APIAlert{Labels: a.Labels, Annotations: nonNil(a.Annotations), State: "firing", ActiveAt: &at, Value: "1e+00"})
	}
	return out
}

func ruleAlerts(r *promrules.AlertingRule) []APIAlert {
	out := []APIAlert{}
	for _, a := range r.ActiveAlerts() {
		at := a.ActiveAt
		aa := APIAlert{
			Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), State: a.State.String(),
			ActiveAt: &at, Value: strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			k := a.KeepFiringSince
			aa.KeepFiringSince = &k
		}
		out = append(out, aa)
	}
	return out
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // client went away
}
