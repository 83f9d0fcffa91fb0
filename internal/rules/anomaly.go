package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Anomaly is vigil's shorthand for a dynamic-threshold alert on any metric.
// It replaces `expr:` in an alerting rule and expands to plain PromQL, so the
// expanded file (`vigil rules check --expand`) loads into any Prometheus.
//
//   - alert: ExecRateAnomaly
//     anomaly:
//     metric: vigil_exec_total      # metric name or selector
//     kind: zscore                  # zscore (default) or seasonal
//     by: [container]               # optional: sum by these labels
//     threshold: 3                  # zscore: standard deviations
//     for: 5m
type Anomaly struct {
	// Metric is a metric name or instant selector, e.g. vigil_exec_total{container!=""}.
	Metric string `yaml:"metric"`
	// Kind is "zscore" (value vs mean and stddev over Window) or "seasonal"
	// (value vs the same time Period ago, averaged over Window, ± Tolerance).
	Kind string `yaml:"kind"`
	// Rate wraps the metric in rate(metric[Rate]). Default 5m for names
	// ending in _total, _count, _sum or _bucket (counters), none otherwise.
	// "0s" disables it.
	Rate *model.Duration `yaml:"rate"`
	// By aggregates with sum by (...). Empty keeps all labels.
	By []string `yaml:"by"`
	// Direction is "up" (default), "down" or "both".
	Direction string `yaml:"direction"`
	// Window: zscore baseline window (default 1h); seasonal averaging
	// window centred on the same time one Period ago (default 30m).
	Window model.Duration `yaml:"window"`
	// Step is the subquery resolution (default 1m).
	Step model.Duration `yaml:"step"`
	// Threshold (zscore): standard deviations from the mean, default 3.
	Threshold float64 `yaml:"threshold"`
	// MinStddev (zscore): floor for the standard deviation, so that a
	// perfectly flat baseline does not turn any tiny change into +Inf.
	MinStddev float64 `yaml:"min_stddev"`
	// Period (seasonal): 1d (default) or 1w, or any duration.
	Period model.Duration `yaml:"period"`
	// Tolerance (seasonal): allowed relative deviation, default 0.5 (±50%).
	Tolerance float64 `yaml:"tolerance"`
	// MinDelta: also require |value - baseline| > MinDelta (absolute),
	// which silences anomalies on tiny values. Default 0 (off).
	MinDelta float64 `yaml:"min_delta"`
}

// Expand returns the PromQL expression and a default description annotation.
func (a Anomaly) Expand() (expr, description string, err error) {
	if strings.TrimSpace(a.Metric) == "" {
		return "", "", fmt.Errorf("anomaly: metric must be set")
	}
	sel, err := parser.ParseExpr(a.Metric)
	if err != nil {
		return "", "", fmt.Errorf("anomaly: metric %q: %w", a.Metric, err)
	}
	vs, ok := sel.(*parser.VectorSelector)
	if !ok {
		return "", "", fmt.Errorf("anomaly: metric %q must be a metric name or selector, not an expression", a.Metric)
	}
	for _, l := range a.By {
		if !model.LabelName(l).IsValidLegacy() {
			return "", "", fmt.Errorf("anomaly: by: invalid label name %q", l)
		}
	}
	dir := a.Direction
	if dir == "" {
		dir = "up"
	}
	if dir != "up" && dir != "down" && dir != "both" {
		return "", "", fmt.Errorf("anomaly: direction %q: want up, down or both", a.Direction)
	}
	if a.MinDelta < 0 || a.MinStddev < 0 {
		return "", "", fmt.Errorf("anomaly: min_delta and min_stddev must not be negative")
	}
	step := durOr(a.Step, time.Minute)

	// s is the series under watch: optionally rated, optionally summed.
	s := a.Metric
	rate := defaultRate(vs.Name)
	if a.Rate != nil {
		rate = time.Duration(*a.Rate)
	}
	if rate > 0 {
		s = fmt.Sprintf("rate(%s[%s])", s, model.Duration(rate))
	}
	if len(a.By) > 0 {
		s = fmt.Sprintf("sum by (%s) (%s)", strings.Join(a.By, ", "), s)
	}

	var (
		dev      string // signed deviation from baseline
		test     string // full condition
		baseline string
	)
	switch a.Kind {
	case "", "zscore":
		win := durOr(a.Window, time.Hour)
		thr := a.Threshold
		if thr == 0 {
			thr = 3
		}
		if thr < 0 {
			return "", "", fmt.Errorf("anomaly: threshold must be positive")
		}
		sub := fmt.Sprintf("(%s)[%s:%s]", s, model.Duration(win), model.Duration(step))
		baseline = "avg_over_time(" + sub + ")"
		sd := "stddev_over_time(" + sub + ")"
		if a.MinStddev > 0 {
			sd = fmt.Sprintf("clamp_min(%s, %s)", sd, num(a.MinStddev))
		}
		dev = fmt.Sprintf("(\n  %s\n  - %s\n)", s, baseline)
		z := fmt.Sprintf("%s\n/ %s", dev, sd)
		test = compare(z, dir, num(thr))
		description = fmt.Sprintf("%s is {{ $value | printf \"%%.1f\" }} standard deviations from its %s mean.", a.Metric, model.Duration(win))
	case "seasonal":
		per := durOr(a.Period, 24*time.Hour)
		win := durOr(a.Window, 30*time.Minute)
		tol := a.Tolerance
		if tol == 0 {
			tol = 0.5
		}
		if tol < 0 {
			return "", "", fmt.Errorf("anomaly: tolerance must be positive")
		}
		if win/2 >= per {
			return "", "", fmt.Errorf("anomaly: window must be shorter than twice the period")
		}
		// Centre the averaging window on the same time one period ago.
		baseline = fmt.Sprintf("avg_over_time((%s)[%s:%s] offset %s)", s, model.Duration(win), model.Duration(step), model.Duration(per-win/2))
		dev = fmt.Sprintf("(\n  %s\n  - %s\n)", s, baseline)
		band := fmt.Sprintf("%s * %s", num(tol), baseline)
		switch dir {
		case "up":
			test = fmt.Sprintf("%s\n> %s", dev, band)
		case "down":
			test = fmt.Sprintf("%s\n< -%s", dev, band)
		default:
			test = fmt.Sprintf("abs%s\n> %s", dev, band)
		}
		description = fmt.Sprintf("%s deviates by {{ $value | printf \"%%.3g\" }} from its value %s ago (tolerance ±%s%%).", a.Metric, model.Duration(per), num(tol*100))
	default:
		return "", "", fmt.Errorf("anomaly: kind %q: want zscore or seasonal", a.Kind)
	}
	if a.MinDelta > 0 {
		test = fmt.Sprintf("(%s)\nand\nabs%s > %s", test, dev, num(a.MinDelta))
	}
	if _, err := parser.ParseExpr(test); err != nil {
		return "", "", fmt.Errorf("anomaly: expanded expression does not parse: %w", err)
	}
	return test + "\n", description, nil
}

func compare(v, dir, thr string) string {
	switch dir {
	case "up":
		return fmt.Sprintf("%s\n> %s", v, thr)
	case "down":
		return fmt.Sprintf("%s\n< -%s", v, thr)
	}
	return fmt.Sprintf("abs(\n%s\n) > %s", v, thr)
}

func defaultRate(name string) time.Duration {
	for _, suf := range []string{"_total", "_count", "_sum", "_bucket"} {
		if strings.HasSuffix(name, suf) {
			return 5 * time.Minute
		}
	}
	return 0
}

func durOr(d model.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
