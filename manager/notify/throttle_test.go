package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitRequests waits until the receiver has seen n requests and a moment
// more, and returns their bodies decoded.
func waitRequests(t *testing.T, got func() []received, n int) []Body {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(got()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // nothing more should come
	rs := got()
	if len(rs) != n {
		t.Fatalf("webhook received %d requests, want %d", len(rs), n)
	}
	out := make([]Body, len(rs))
	for i, r := range rs {
		if err := json.Unmarshal(r.body, &out[i]); err != nil {
			t.Fatalf("request %d: %v: %s", i, err, r.body)
		}
	}
	return out
}

// An alert storm through a real loopback webhook: per notifier and rule at
// most Burst notifications per window go out, the rest are counted and
// arrive as one summary when the window closes.
func TestThrottleStormToWebhook(t *testing.T) {
	srv, got := flakyServer(t, 0, 0)
	srv2, got2 := flakyServer(t, 0, 0)
	d := NewDispatcher(DispatcherConfig{Workers: 1})
	defer d.Close(context.Background())
	s := NewService(d, Options{Throttle: ThrottleConfig{Burst: 3, Window: time.Minute}})
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	clock := t0
	s.now = func() time.Time { return clock }
	hook := json.RawMessage(`{"url":"` + srv.URL + `"}`)
	hook2 := json.RawMessage(`{"url":"` + srv2.URL + `"}`)
	alert := func(rule string, i int) Alert {
		a := testAlert()
		a.ID = fmt.Sprintf("al-%s-%d", rule, i)
		a.Rule = RuleRef{ID: rule, Name: rule}
		a.Events = a.Events[:1]
		a.Events[0].ID = fmt.Sprintf("ev-%s-%d", rule, i)
		return a
	}
	for i := 0; i < 10; i++ { // a storm of one rule, to two notifiers
		clock = t0.Add(time.Duration(i) * time.Second)
		for _, n := range []struct {
			id  string
			cfg json.RawMessage
		}{{"n1", hook}, {"n2", hook2}} {
			if err := s.Send(n.id, n.id, "webhook", n.cfg, alert("brute", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 2; i++ { // another rule has a budget of its own
		if err := s.Send("n1", "n1", "webhook", hook, alert("malware", i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Suppressed() != 14 {
		t.Fatalf("Suppressed = %d, want 7 per notifier", s.Suppressed())
	}
	if n := s.Flush(t0.Add(59 * time.Second)); n != 0 {
		t.Fatalf("Flush before the window closed queued %d summaries", n)
	}
	waitRequests(t, got, 5) // 3 brute + 2 malware
	waitRequests(t, got2, 3)
	if n := s.Flush(t0.Add(time.Minute)); n != 2 {
		t.Fatalf("Flush at the window's close queued %d summaries, want one per notifier", n)
	}
	bodies := waitRequests(t, got, 6)
	waitRequests(t, got2, 4)
	sum := bodies[5]
	if sum.Suppressed != 7 || sum.Count != 7 || !strings.HasPrefix(sum.Summary, "7 more alerts suppressed") ||
		sum.Rule.ID != "brute" || sum.ID != "al-brute-9-suppressed" || !sum.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("summary = %+v", sum.Alert)
	}
	if len(sum.Events) != 1 || !strings.Contains(string(got()[5].body), `"id":"ev-brute-9"`) {
		t.Fatalf("summary does not carry the last suppressed event: %s", got()[5].body)
	}
	for _, b := range bodies[:5] {
		if b.Suppressed != 0 || b.Summary != "" {
			t.Fatalf("a regular notification carries a summary: %+v", b.Alert)
		}
	}
	// A new window after the close: notifications flow again.
	clock = t0.Add(61 * time.Second)
	if err := s.Send("n1", "n1", "webhook", hook, alert("brute", 10)); err != nil {
		t.Fatal(err)
	}
	waitRequests(t, got, 7)
	if s.Flush(t0.Add(3*time.Minute)) != 0 || s.Summaries() != 2 {
		t.Fatalf("a window without suppressed alerts produced a summary (%d in all)", s.Summaries())
	}
}

func TestThrottleDisabledAndForgotten(t *testing.T) {
	srv, got := flakyServer(t, 0, 0)
	d := NewDispatcher(DispatcherConfig{Workers: 1})
	defer d.Close(context.Background())
	s := NewService(d, Options{Throttle: ThrottleConfig{Burst: -1}})
	hook := json.RawMessage(`{"url":"` + srv.URL + `"}`)
	for i := 0; i < 25; i++ {
		s.Send("n1", "n1", "webhook", hook, testAlert())
	}
	waitRequests(t, got, 25)
	if s.Suppressed() != 0 {
		t.Fatalf("Burst -1 suppressed %d", s.Suppressed())
	}
	// A notifier deleted while its window was open gets no summary.
	s2 := NewService(d, Options{Throttle: ThrottleConfig{Burst: 1}})
	s2.Send("n9", "n9", "webhook", hook, testAlert())
	s2.Send("n9", "n9", "webhook", hook, testAlert())
	s2.Forget("n9")
	if n := s2.FlushAll(); n != 0 {
		t.Fatalf("FlushAll queued %d summaries for a forgotten notifier", n)
	}
	waitRequests(t, got, 26)
}

// Mail and syslog say what a summary stands for: CEF/LEEF carry only the
// event, so its message names the suppressed count.
func TestSummaryRendering(t *testing.T) {
	w := &throttleWindow{suppressed: 42, last: testAlert()}
	a := summaryAlert(w, ThrottleConfig{Burst: 10, Window: time.Minute}, time.Date(2026, 11, 25, 3, 1, 0, 0, time.UTC))
	mn, err := Build("ops", "email", json.RawMessage(`{"address":"127.0.0.1:25","from":"mamori@example.test","to":["ops@example.test"]}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := string(mn.(*Mail).Message(a, a.Time))
	if !strings.Contains(msg, "(42 more suppressed)") || !strings.Contains(TextBody(a), "42 more alerts suppressed") {
		t.Errorf("mail:\n%s", msg)
	}
	for _, format := range []string{"cef", "leef", "json"} {
		sn, err := Build("siem", "syslog", json.RawMessage(`{"network":"udp","address":"127.0.0.1:514","format":"`+format+`"}`), Options{})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := sn.(*Syslog).Messages(a)
		if err != nil || len(msgs) != len(a.Events) || !strings.Contains(msgs[0], "42 more alerts suppressed") {
			t.Errorf("syslog %s = %q, %v", format, msgs, err)
		}
	}
}
