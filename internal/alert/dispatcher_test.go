package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorder is a Notifier that records what it is given and can be told to
// fail. It stands in for a receiver in tests about the dispatcher's own
// logic; delivery to real receivers is tested against Alertmanager.
type recorder struct {
	mu     sync.Mutex
	name   string
	fail   error
	got    [][]Alert
	notify chan struct{}
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, notify: make(chan struct{}, 100)}
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Notify(_ context.Context, as []Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, as)
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) setFail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }

func (r *recorder) all() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, b := range r.got {
		out = append(out, b...)
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func run(t *testing.T, d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func firing(name string) Alert {
	return Alert{
		Labels:      map[string]string{"alertname": name, "severity": "warning"},
		Annotations: map[string]string{"summary": name + " fired"},
		StartsAt:    time.Now(),
	}
}

func TestDedupResendAndExternalLabels(t *testing.T) {
	rec := newRecorder("rec")
	d, err := NewDispatcher(Options{
		Notifiers: []Notifier{rec}, ResendInterval: 300 * time.Millisecond,
		ExternalLabels: map[string]string{"host": "node1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := firing("Dup")
	for range 20 {
		d.Send("test", []Alert{a})
	}
	run(t, d)
	waitFor(t, "first delivery", 2*time.Second, func() bool { return len(rec.all()) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(rec.all()); n != 1 {
		t.Fatalf("20 identical sends delivered %d times before the resend interval, want 1", n)
	}
	if got := rec.all()[0].Labels["host"]; got != "node1" {
		t.Fatalf("host label %q, want node1", got)
	}
	// While firing, the alert is re-sent every resend interval without new Sends.
	waitFor(t, "resends", 3*time.Second, func() bool { return len(rec.all()) >= 3 })

	// A changed annotation is news and goes out at once.
	before := len(rec.all())
	b := a
	b.Annotations = map[string]string{"summary": "changed"}
	d.Send("test", []Alert{b})
	waitFor(t, "changed alert", time.Second, func() bool { return len(rec.all()) > before })

	// Resolve it: the resolved notice is delivered and resends stop.
	r := a
	r.EndsAt = time.Now()
	d.Send("test", []Alert{r})
	waitFor(t, "resolved notice", time.Second, func() bool {
		all := rec.all()
		return all[len(all)-1].Resolved(time.Now())
	})
	n := len(rec.all())
	time.Sleep(700 * time.Millisecond)
	if len(rec.all()) != n {
		t.Fatalf("resolved alert was re-sent")
	}
	if len(d.Active()) != 0 {
		t.Fatalf("resolved alert still active: %v", d.Active())
	}
}

func TestExpiredAlertIsResolved(t *testing.T) {
	rec := newRecorder("rec")
	d, _ := NewDispatcher(Options{Notifiers: []Notifier{rec}, ResendInterval: 200 * time.Millisecond})
	a := firing("Expiring")
	a.EndsAt = time.Now().Add(300 * time.Millisecond) // producer stops refreshing
	d.Send("test", []Alert{a})
	run(t, d)
	waitFor(t, "resolved notice for an expired alert", 3*time.Second, func() bool {
		all := rec.all()
		return len(all) > 0 && all[len(all)-1].Resolved(time.Now())
	})
}

func TestReconcileResolvesVanishedAlerts(t *testing.T) {
	rec := newRecorder("rec")
	d, _ := NewDispatcher(Options{Notifiers: []Notifier{rec}})
	d.Send("metrics", []Alert{firing("Stays"), firing("Gone")})
	d.Send("events", []Alert{firing("OtherSource")})
	d.Reconcile("metrics", []Alert{firing("Stays")})
	names := map[string]bool{}
	for _, a := range d.Active() {
		names[a.Name()] = true
	}
	if !names["Stays"] || names["Gone"] || !names["OtherSource"] {
		t.Fatalf("after reconcile active = %v", names)
	}
	run(t, d)
	waitFor(t, "resolved notice for Gone", 2*time.Second, func() bool {
		for _, a := range rec.all() {
			if a.Name() == "Gone" && a.Resolved(time.Now()) {
				return true
			}
		}
		return false
	})
}

func TestRetryWithBackoffAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := newRecorder("flaky")
	rec.setFail(errors.New("connection refused"))
	d, _ := NewDispatcher(Options{Notifiers: []Notifier{rec}, Registerer: reg,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	d.Send("test", []Alert{firing("Retry")})
	run(t, d)
	waitFor(t, "failed attempts", 2*time.Second, func() bool {
		return testutil.ToFloat64(d.m.failed.WithLabelValues("flaky")) >= 3
	})
	waitFor(t, "queue length 1 while failing", time.Second, func() bool {
		return testutil.ToFloat64(d.m.queueLen.WithLabelValues("flaky")) == 1
	})
	rec.setFail(nil)
	waitFor(t, "delivery after recovery", 2*time.Second, func() bool { return len(rec.all()) == 1 })
	waitFor(t, "sent counter", time.Second, func() bool {
		return testutil.ToFloat64(d.m.sent.WithLabelValues("flaky")) == 1
	})
	// A permanent rejection is dropped, not retried forever.
	rec.setFail(&PermanentError{errors.New("400 bad request")})
	d.Send("test", []Alert{firing("Rejected")})
	waitFor(t, "drop counter", 2*time.Second, func() bool {
		return testutil.ToFloat64(d.m.dropped.WithLabelValues("flaky")) == 1
	})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_notification_queue_length Alerts waiting for delivery, per notifier.
# TYPE vigil_notification_queue_length gauge
vigil_notification_queue_length{notifier="flaky"} 0
`), "vigil_notification_queue_length"); err != nil {
		t.Fatal(err)
	}
}

func TestQueueFullDropsOldest(t *testing.T) {
	q := newQueue(3)
	dropped := 0
	for i := range 5 {
		dropped += q.push(firing(fmt.Sprint("A", i)))
	}
	if dropped != 2 || q.len() != 3 {
		t.Fatalf("dropped %d, len %d; want 2, 3", dropped, q.len())
	}
	if got := q.pop(1)[0].Name(); got != "A2" {
		t.Fatalf("oldest kept is %s, want A2", got)
	}
	// Same fingerprint replaces in place: latest state wins.
	a := firing("A3")
	a.Annotations = map[string]string{"v": "new"}
	q.push(a)
	if q.len() != 2 {
		t.Fatalf("replacement grew the queue to %d", q.len())
	}
}

func TestStatePersistsUndeliveredResolvedNotice(t *testing.T) {
	state := filepath.Join(t.TempDir(), "alerts.json")
	down := newRecorder("am")
	down.setFail(errors.New("connection refused"))
	d1, _ := NewDispatcher(Options{Notifiers: []Notifier{down}, StateFile: state,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	stop := run(t, d1)
	d1.Send("metrics", []Alert{firing("StillFiring")})
	r := firing("ResolvedWhileDown")
	r.EndsAt = time.Now()
	d1.Send("metrics", []Alert{r})
	time.Sleep(100 * time.Millisecond)
	stop() // agent restart: nothing delivered yet

	up := newRecorder("am")
	d2, _ := NewDispatcher(Options{Notifiers: []Notifier{up}, StateFile: state})
	if act := d2.Active(); len(act) != 1 || act[0].Name() != "StillFiring" {
		t.Fatalf("restored active = %v", act)
	}
	run(t, d2)
	waitFor(t, "both notices delivered after restart", 2*time.Second, func() bool { return len(up.all()) == 2 })
	for _, a := range up.all() {
		if a.Name() == "ResolvedWhileDown" && !a.Resolved(time.Now()) {
			t.Fatal("resolved notice lost its end time")
		}
	}
}

func TestWebhookPayloadShape(t *testing.T) {
	var got WebhookMessage
	var hdr string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	wh, err := NewWebhook(srv.URL+"/hook", "http://vigil:9090", map[string]string{"Authorization": "Bearer x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := firing("Hook"), firing("Hook")
	b.Labels["container"] = "c1"
	b.EndsAt = time.Now().Add(-time.Second)
	if err := wh.Notify(context.Background(), []Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	if got.Version != "4" || got.Status != "firing" || len(got.Alerts) != 2 || hdr != "Bearer x" {
		t.Fatalf("payload %+v header %q", got, hdr)
	}
	if got.Alerts[1].Status != "resolved" || got.CommonLabels["container"] != "" || got.CommonLabels["alertname"] != "Hook" {
		t.Fatalf("alerts %+v common %v", got.Alerts, got.CommonLabels)
	}
	if len(got.Alerts[0].Fingerprint) != 16 {
		t.Fatalf("fingerprint %q", got.Alerts[0].Fingerprint)
	}
	// A 4xx answer is permanent, 5xx is retried.
	for code, perm := range map[int]bool{400: true, 503: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
		wh, _ := NewWebhook(srv.URL, "", nil, nil)
		err := wh.Notify(context.Background(), []Alert{a})
		var pe *PermanentError
		if err == nil || errors.As(err, &pe) != perm {
			t.Errorf("HTTP %d: err %v, permanent=%v", code, err, errors.As(err, &pe))
		}
		srv.Close()
	}
}

func TestStdoutLine(t *testing.T) {
	var buf bytes.Buffer
	s := NewStdout(&buf)
	s.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	a := firing("ExecBurst")
	a.Labels["host"] = "n1"
	r := a
	r.EndsAt = s.now()
	if err := s.Notify(context.Background(), []Alert{a, r}); err != nil {
		t.Fatal(err)
	}
	want := `2026-01-02T03:04:05Z FIRING ExecBurst {host="n1", severity="warning"} summary="ExecBurst fired"
2026-01-02T03:04:05Z RESOLVED ExecBurst {host="n1", severity="warning"} summary="ExecBurst fired"
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestDuplicateNotifierNames(t *testing.T) {
	if _, err := NewDispatcher(Options{Notifiers: []Notifier{newRecorder("x"), newRecorder("x")}}); err == nil {
		t.Fatal("duplicate notifier names accepted")
	}
}

func testValue(c *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(label))
}

func TestTwoDispatchersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, errA := NewDispatcher(Options{Notifiers: []Notifier{newRecorder("a")}, Registerer: reg})
	b, errB := NewDispatcher(Options{Notifiers: []Notifier{newRecorder("b")}, Registerer: reg})
	if errA != nil || errB != nil || a == nil || b == nil {
		t.Fatal(errA, errB)
	}
	n, err := testutil.GatherAndCount(reg, "vigil_notification_queue_length")
	if err != nil || n != 2 {
		t.Fatalf("%d queue-length series (%v), want one per notifier", n, err)
	}
}
