package manager

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/notify"
	"github.com/mamori-sec/mamori/manager/store"
)

// An alert storm through the manager reaches a real loopback webhook as
// NotifyBurst notifications and, when the window closes, one summary with
// the count of the rest; /metrics counts what was held back. Every alert
// is stored all the same.
func TestAlertStormThrottledNotifications(t *testing.T) {
	// One database is enough: the throttle lives in memory, above the store.
	e := newEnv(t, store.SQLite, func(c *Config) { c.NotifyBurst = 2; c.NotifyWindow = time.Second })
	ctx := context.Background()
	hooks := make(chan notify.Body, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b notify.Body
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Errorf("webhook body: %v: %s", err, raw)
		}
		hooks <- b
	}))
	defer srv.Close()
	var n api.Notifier
	e.must(e.admin, "POST", "/api/v1/notifiers", api.NotifierRequest{Name: "hook", Type: "webhook", Config: json.RawMessage(`{"url":"` + srv.URL + `"}`)}, &n)
	var ar api.AlertRule
	e.must(e.admin, "POST", "/api/v1/alert-rules", api.AlertRuleRequest{Name: "brute force", Module: "loginspect", MinSeverity: "high", NotifierIDs: []string{n.ID}}, &ar)
	a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
	start := time.Now()
	if _, err := a.Upload(ctx, managertest.Events(12, "loginspect", event.SeverityHigh)); err != nil {
		t.Fatal(err)
	}
	var alerts api.Page[api.Alert]
	e.must(e.admin, "GET", "/api/v1/alerts?limit=100", nil, &alerts)
	if len(alerts.Items) != 12 {
		t.Fatalf("%d alerts stored, want all 12", len(alerts.Items))
	}
	var got []notify.Body
	deadline := time.After(10 * time.Second)
	for len(got) < 3 {
		select {
		case b := <-hooks:
			got = append(got, b)
		case <-deadline:
			t.Fatalf("webhook got %d notifications in 10 s, want 2 and a summary: %+v", len(got), got)
		}
	}
	for _, b := range got[:2] {
		if b.Suppressed != 0 || b.Rule.ID != ar.ID {
			t.Fatalf("first notifications = %+v", b.Alert)
		}
	}
	sum := got[2]
	if sum.Suppressed != 10 || sum.Count != 10 || !strings.HasPrefix(sum.Summary, "10 more alerts suppressed") || sum.Rule.ID != ar.ID || len(sum.Events) != 1 {
		t.Fatalf("summary = %+v", sum.Alert)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("summary came after %v, before the 1 s window closed", waited)
	}
	select {
	case b := <-hooks:
		t.Fatalf("a fourth notification: %+v", b.Alert)
	case <-time.After(300 * time.Millisecond):
	}
	resp, err := e.http.Get(e.m.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"mamori_manager_notifications_suppressed_total 10", "mamori_manager_notification_summaries_total 1"} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
