package notify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/alerting"
)

// TestRulesToWebhookAndSyslog runs the manager's path end to end with real
// listeners: events are matched by compiled alert rules, repeats are folded
// by the Service's per-notifier throttle, and the alerts reach a webhook and
// a syslog collector through one Dispatcher.
func TestRulesToWebhookAndSyslog(t *testing.T) {
	srv, hooks := flakyServer(t, 0, 0)
	col := startCollector(t, "tcp", nil)
	specs, err := alerting.DecodeRules(strings.NewReader(`[
		{"id": "brute", "name": "SSH brute force", "rules": ["mamori-ssh-*"], "min_severity": "medium",
		 "notifiers": ["soc"]},
		{"id": "malware", "kinds": ["malware.detection"], "notifiers": ["soc", "siem"]}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := alerting.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(DispatcherConfig{})
	svc := NewService(d, Options{ProductVersion: "0.1.0", Throttle: ThrottleConfig{Burst: 1, Window: time.Minute}})
	stored := map[string]struct {
		typ      string
		settings string
	}{
		"soc":  {"webhook", `{"url":"` + srv.URL + `"}`},
		"siem": {"syslog", `{"network":"tcp","address":"` + col.addr + `","format":"cef"}`},
	}
	comp := alerting.Computer{ID: "c-42", Group: "web"}
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := 0; i < 5; i++ { // five failures from one source: one alert
		evs = append(evs, event.Event{ID: "b" + string(rune('0'+i)), Time: t0.Add(time.Duration(i) * time.Second), Kind: event.KindLogAlert,
			Severity: event.SeverityHigh, Message: "brute force", Rule: &event.Rule{ID: "mamori-ssh-bruteforce"}, Src: &event.Endpoint{IP: "203.0.113.9"}})
	}
	evs = append(evs, event.Event{ID: "m1", Time: t0, Kind: event.KindMalwareDetection, Severity: event.SeverityCritical, Message: "Eicar"})
	for i := range evs {
		for _, id := range m.Match(&evs[i], comp) {
			r, _ := m.Rule(id)
			a := Alert{ID: "al-" + evs[i].ID, Tenant: "t1", Rule: RuleRef{ID: string(id), Name: r.Spec.Name},
				Computer: ComputerRef{ID: comp.ID, Hostname: "web-1"}, Events: []event.Event{evs[i]}, Count: 1, Time: evs[i].Time}
			for _, name := range r.Spec.Notifiers {
				s := stored[name]
				if err := svc.Send(name, name, s.typ, json.RawMessage(s.settings), a); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// The folded repeats come out of the throttle as one summary alert.
	svc.FlushAll()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Webhook: brute (first), malware, brute summary with count 4.
	got := hooks()
	if len(got) != 3 {
		t.Fatalf("webhook got %d alerts, want 3", len(got))
	}
	for _, h := range got {
		var b struct {
			Rule  RuleRef `json:"rule"`
			Count int     `json:"count"`
		}
		if err := json.Unmarshal(h.body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Rule.ID == "brute" && b.Count != 1 && b.Count != 4 {
			t.Errorf("brute alert count %d", b.Count)
		}
	}
	if m := col.next(t); str(m.MsgID) != "malware.detection" || !strings.HasPrefix(str(m.Message), "CEF:0|mamori|mamori|0.1.0|malware.detection|") {
		t.Errorf("syslog got %q %q", str(m.MsgID), str(m.Message))
	}
	if st := d.Stats(); st.Sent != 4 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want 4 sent (3 webhook, 1 syslog)", st)
	}
}
