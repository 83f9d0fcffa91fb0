package testutil

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one parsed scrape of a Prometheus text exposition.
type Metrics map[string]*dto.MetricFamily

// ScrapeText fetches url (e.g. http://127.0.0.1:19400/metrics) and returns
// the raw text exposition.
func ScrapeText(url string) ([]byte, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// Scrape fetches and parses url.
func Scrape(url string) (Metrics, error) {
	body, err := ScrapeText(url)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(body)
}

// ParseMetrics parses a Prometheus text exposition.
func ParseMetrics(text []byte) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(text)))
	if err != nil {
		return nil, err
	}
	return Metrics(fams), nil
}

// Get returns the value of the series of family name whose labels include
// all of labels (counter, gauge or untyped; for histograms the sample
// count), summed over every matching series, and whether any matched.
func (m Metrics) Get(name string, labels map[string]string) (float64, bool) {
	fam, ok := m[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
	for _, s := range fam.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		found = true
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Untyped != nil:
			sum += s.Untyped.GetValue()
		case s.Histogram != nil:
			sum += float64(s.Histogram.GetSampleCount())
		case s.Summary != nil:
			sum += float64(s.Summary.GetSampleCount())
		}
	}
	return sum, found
}

// Value is Get returning 0 for a series that does not exist (yet), which is
// what a counter that never moved looks like.
func (m Metrics) Value(name string, labels map[string]string) float64 {
	v, _ := m.Get(name, labels)
	return v
}

// Series lists the label sets of family name, formatted like {a="x",b="y"},
// sorted; handy in failure messages.
func (m Metrics) Series(name string) []string {
	fam, ok := m[name]
	if !ok {
		return nil
	}
	var out []string
	for _, s := range fam.GetMetric() {
		var parts []string
		for _, l := range s.GetLabel() {
			parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		out = append(out, "{"+strings.Join(parts, ",")+"}")
	}
	sort.Strings(out)
	return out
}

func hasLabels(s *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == k {
				found = l.GetValue() == v
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Gather collects g (e.g. an agent's registry) in-process, without HTTP.
func Gather(g interface {
	Gather() ([]*dto.MetricFamily, error)
}) (Metrics, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, err
	}
	m := Metrics{}
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m, nil
}
