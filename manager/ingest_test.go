package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
)

func TestIngestAndQuery(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		b := e.agent(e.token(e.admin, api.TokenRequest{}), "m2")
		evs := managertest.Events(300, "antimalware", event.SeverityHigh)
		evs = append(evs, managertest.Events(200, "loginspect", event.SeverityLow)...)
		evs[7].Message = "EICAR test signature in /tmp/x"
		evs[7].Rule = &event.Rule{ID: "clamav.eicar"}
		res, err := a.Upload(ctx, evs)
		if err != nil || res.Accepted != 500 || res.Duplicates != 0 {
			t.Fatalf("upload = %+v, %v", res, err)
		}
		// The agent retries (it never saw the answer): nothing is stored twice.
		res, err = a.Upload(ctx, append(evs[:100:100], evs[0]))
		if err != nil || res.Accepted != 0 || res.Duplicates != 101 {
			t.Fatalf("retry = %+v, %v", res, err)
		}
		if _, err := b.Upload(ctx, managertest.Events(10, "antimalware", event.SeverityCritical)); err != nil {
			t.Fatal(err)
		}
		q := func(params string) api.Page[event.Event] {
			var p api.Page[event.Event]
			e.must(e.admin, "GET", "/api/v1/events?"+params, nil, &p)
			return p
		}
		for _, tc := range []struct {
			params string
			want   int
		}{
			{"limit=1000", 510},
			{"computer=" + a.ComputerID + "&limit=1000", 500},
			{"module=loginspect&limit=1000", 200},
			{"severity=high&limit=1000", 310},
			{"severity=critical&limit=1000", 10},
			{"rule=clamav.eicar", 1},
			{"q=eicar+TEST", 1},
			{"from=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), 0},
			{"to=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)) + "&limit=1000", 510},
		} {
			if got := len(q(tc.params).Items); got != tc.want {
				t.Errorf("events?%s = %d, want %d", tc.params, got, tc.want)
			}
		}
		seen, cursor := 0, ""
		for i := 0; i < 20; i++ {
			p := q("limit=64&cursor=" + cursor)
			seen += len(p.Items)
			for _, ev := range p.Items {
				if ev.ComputerID == "" {
					t.Fatal("stored event lost its computer")
				}
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if seen != 510 {
			t.Fatalf("paged through %d events, want 510", seen)
		}
		var eb api.ErrorBody
		if code := e.call(e.admin, "GET", "/api/v1/events?severity=loud", nil, &eb); code != 400 || eb.Error.Field != "severity" {
			t.Fatalf("bad severity = %d %+v", code, eb)
		}
		if code := e.call(e.admin, "GET", "/api/v1/events?from=yesterday", nil, &eb); code != 400 || eb.Error.Field != "from" {
			t.Fatalf("bad from = %d %+v", code, eb)
		}
		// Over the batch limit: 413 and nothing stored.
		before, _ := e.m.Store().CountEvents(ctx, a.TenantID)
		_, err = a.Upload(ctx, managertest.Events(api.MaxBatchEvents+1, "x", 1))
		if statusOf(err) != 413 {
			t.Fatalf("oversized batch = %v, want 413", err)
		}
		if after, _ := e.m.Store().CountEvents(ctx, a.TenantID); after != before {
			t.Fatalf("oversized batch stored %d events", after-before)
		}
	})
}

func TestAlertsAckDismiss(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{Group: "db"}), "m1")
		hooks := make(chan []byte, 10)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			hooks <- b
		}))
		defer srv.Close()
		var eb api.ErrorBody
		if code := e.call(e.admin, "POST", "/api/v1/notifiers", api.NotifierRequest{Name: "hook", Type: "webhook", Config: json.RawMessage(`{"url":"ftp://x"}`)}, &eb); code != 400 || eb.Error.Field != "config.url" {
			t.Fatalf("bad webhook url = %d %+v, want 400 on config.url", code, eb)
		}
		var n api.Notifier
		e.must(e.admin, "POST", "/api/v1/notifiers", api.NotifierRequest{Name: "hook", Type: "webhook", Config: json.RawMessage(`{"url":"` + srv.URL + `"}`)}, &n)
		var ar api.AlertRule
		e.must(e.admin, "POST", "/api/v1/alert-rules", api.AlertRuleRequest{Name: "db high malware", Module: "antimalware", MinSeverity: "high", Group: "db", NotifierIDs: []string{n.ID}}, &ar)
		evs := append(managertest.Events(2, "antimalware", event.SeverityHigh), managertest.Events(3, "antimalware", event.SeverityLow)...)
		evs = append(evs, managertest.Events(1, "integrity", event.SeverityCritical)...)
		for i := 0; i < 2; i++ { // the retry must not alert again
			if _, err := a.Upload(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
		var open api.Page[api.Alert]
		e.must(e.admin, "GET", "/api/v1/alerts?status=open", nil, &open)
		if len(open.Items) != 2 {
			t.Fatalf("%d open alerts, want 2", len(open.Items))
		}
		for i := 0; i < 2; i++ {
			select {
			case b := <-hooks:
				if !strings.Contains(string(b), ar.ID) {
					t.Fatalf("webhook body lacks the rule: %s", b)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("webhook %d not delivered", i)
			}
		}
		select {
		case b := <-hooks:
			t.Fatalf("third webhook (the retried batch alerted again?): %s", b)
		case <-time.After(300 * time.Millisecond):
		}
		var got api.Alert
		e.must(e.admin, "POST", "/api/v1/alerts/"+open.Items[0].ID+"/acknowledge", nil, &got)
		if got.Status != api.AlertAcknowledged || !strings.HasPrefix(got.UpdatedBy, "key:") {
			t.Fatalf("acknowledged = %+v", got)
		}
		e.must(e.admin, "POST", "/api/v1/alerts/"+open.Items[1].ID+"/dismiss", nil, &got)
		e.must(e.admin, "GET", "/api/v1/alerts?status=open", nil, &open)
		if len(open.Items) != 0 {
			t.Fatalf("%d alerts still open", len(open.Items))
		}
	})
}

func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ctx := context.Background()
	a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
	a.Heartbeat(ctx, api.Heartbeat{}, 0)
	a.Upload(ctx, managertest.Events(3, "x", 1))
	e.m.refreshGauges(ctx, time.Now())
	resp, err := e.http.Get(e.m.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mamori_manager_agents{state="online"} 1`,
		"mamori_manager_heartbeats_total 1",
		`mamori_manager_events_ingested_total{result="accepted"} 3`,
		"mamori_manager_heartbeat_duration_seconds_bucket",
		"mamori_manager_ingest_duration_seconds_bucket",
		`mamori_manager_db_operation_duration_seconds_count{op="insert_events"}`,
		"mamori_manager_commands_pending 0",
		`mamori_manager_http_request_duration_seconds_count{code="200",route="POST /api/v1/agent/heartbeat"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, err = e.http.Get(e.m.URL() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %v, %v", resp, err)
	}
	resp.Body.Close()
}

func TestRetentionAndCleanup(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		old := managertest.Events(5, "x", 1)
		for i := range old {
			old[i].Time = time.Now().AddDate(0, 0, -40)
		}
		if _, err := a.Upload(ctx, append(old, managertest.Events(3, "x", 1)...)); err != nil {
			t.Fatal(err)
		}
		e.must(e.admin, "PATCH", "/api/v1/settings", api.SettingsPatch{EventRetentionDays: ptr(30), InactiveCleanupDays: ptr(7)}, nil)
		e.m.runJobsOnce(ctx, time.Now())
		if n, _ := e.m.Store().CountEvents(ctx, a.TenantID); n != 3 {
			t.Fatalf("%d events after retention, want 3", n)
		}
		e.m.runJobsOnce(ctx, time.Now().AddDate(0, 0, 8)) // the agent has been silent 8 days
		var cs api.Page[api.Computer]
		e.must(e.admin, "GET", "/api/v1/computers", nil, &cs)
		if len(cs.Items) != 0 {
			t.Fatalf("inactive computer not cleaned up: %+v", cs.Items)
		}
		if !auditHas(e, e.admin, "computer.cleanup", a.ComputerID) {
			t.Fatal("clean-up not audited")
		}
	})
}

func TestOfflineAndWarningStates(t *testing.T) {
	st := api.Settings{OfflineAfterMissed: 3, DefaultHeartbeatSeconds: 60}
	now := time.Now()
	for _, tc := range []struct {
		name string
		c    api.Computer
		want string
	}{
		{"fresh", api.Computer{LastHeartbeat: now}, api.StateOnline},
		{"missed 2", api.Computer{LastHeartbeat: now.Add(-2 * time.Minute)}, api.StateOnline},
		{"missed 4", api.Computer{LastHeartbeat: now.Add(-4 * time.Minute)}, api.StateOffline},
		{"module failed", api.Computer{LastHeartbeat: now, Modules: []api.ModuleState{{Name: "x", State: "failed"}}}, api.StateWarning},
		{"unavailable is not a failure", api.Computer{LastHeartbeat: now, Modules: []api.ModuleState{{Name: "x", State: "unavailable"}}}, api.StateOnline},
		{"deactivated", api.Computer{LastHeartbeat: now, Deactivated: true}, api.StateDeactivated},
	} {
		if got := computerState(tc.c, st, now); got != tc.want {
			t.Errorf("%s: state = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestIngestMixedBatchKeepsEachEvent sends a batch whose bad and repeated
// events sit between good ones, twice in a row (the second reuses the
// pooled scratch of the first): every stored event must be the one sent
// under its ID, with nothing left over from the earlier batch.
func TestIngestMixedBatchKeepsEachEvent(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		for round, mod := range []string{"antimalware", "loginspect"} {
			evs := managertest.Events(6, mod, event.SeverityHigh)
			for i := range evs {
				evs[i].Message = fmt.Sprintf("round %d event %d", round, i)
			}
			evs[0].Rule = &event.Rule{ID: fmt.Sprintf("r%d", round)}
			evs[2].Kind = "" // invalid: no kind
			evs[4] = evs[1]  // repeated ID
			res, err := a.Upload(ctx, evs)
			if err != nil || res.Accepted != 4 || res.Duplicates != 1 || res.Rejected != 1 {
				t.Fatalf("round %d: upload = %+v, %v", round, res, err)
			}
			var p api.Page[event.Event]
			e.must(e.admin, "GET", "/api/v1/events?module="+mod+"&limit=100", nil, &p)
			got := map[string]event.Event{}
			for _, ev := range p.Items {
				got[ev.ID] = ev
			}
			if len(got) != 4 {
				t.Fatalf("round %d: stored %d events, want 4", round, len(got))
			}
			for _, i := range []int{0, 1, 3, 5} {
				ev, ok := got[evs[i].ID]
				if !ok || ev.Message != evs[i].Message {
					t.Errorf("round %d: event %d stored as %+v", round, i, ev)
				}
				if ev.Rule == nil || ev.Rule.ID != evs[i].Rule.ID {
					t.Errorf("round %d: event %d rule %+v, want %+v", round, i, ev.Rule, evs[i].Rule)
				}
			}
		}
	})
}
