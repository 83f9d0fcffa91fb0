package alert

import (
	"testing"
	"time"

	"github.com/vigilproject/vigil/internal/alert/alerttest"
)

func TestAlertmanagerFiringAndResolved(t *testing.T) {
	am := alerttest.Start(t)
	n, err := NewAlertmanager(am.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := NewDispatcher(Options{Notifiers: []Notifier{n}, ExternalLabels: map[string]string{"host": "h1"}})
	run(t, d)
	a := firing("AMDirect")
	d.Send("test", []Alert{a})
	got, took, ok := am.WaitFiring("AMDirect", 10*time.Second)
	if !ok {
		t.Fatal("alert never reached Alertmanager")
	}
	t.Logf("dispatcher → Alertmanager: %v", took)
	if got.Labels["host"] != "h1" || got.Annotations["summary"] != "AMDirect fired" {
		t.Fatalf("Alertmanager has %+v", got)
	}
	a.EndsAt = time.Now()
	d.Send("test", []Alert{a})
	if _, ok := am.WaitResolved("AMDirect", 10*time.Second); !ok {
		t.Fatal("resolved notice never reached Alertmanager")
	}
}

func TestAlertmanagerDownThenUp(t *testing.T) {
	am := alerttest.Start(t)
	n, _ := NewAlertmanager(am.URL, nil, nil)
	d, _ := NewDispatcher(Options{Notifiers: []Notifier{n},
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Timeout: time.Second})
	run(t, d)
	am.Stop()
	d.Send("test", []Alert{firing("WhileDown")})
	waitFor(t, "failed deliveries while Alertmanager is down", 5*time.Second, func() bool {
		return testValue(d.m.failed, n.Name()) >= 2
	})
	am.Restart()
	if _, took, ok := am.WaitFiring("WhileDown", 10*time.Second); !ok {
		t.Fatal("alert raised while Alertmanager was down never arrived")
	} else {
		t.Logf("delivered %v after Alertmanager came back", took)
	}
}
