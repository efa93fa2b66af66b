package notify

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ThrottleConfig caps the notifications one notifier sends for one alert
// rule, so that an alert storm (a brute force, a worm touching thousands of
// files) cannot become a notification storm that buries the one that
// matters, gets the mail server to throttle the manager, or the webhook's
// owner to block it. Alerts are stored either way; only their
// notifications are held back.
type ThrottleConfig struct {
	// Burst is how many notifications go out per window (default 10;
	// negative: no throttling).
	Burst int
	// Window is how long a window lasts from its first notification
	// (default 1 minute). When it closes with alerts held back, one
	// summary notification ("N more alerts suppressed") follows.
	Window time.Duration
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.Burst == 0 {
		c.Burst = 10
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	return c
}

// maxThrottleWindows bounds the throttle's memory: past it, alerts of new
// (notifier, rule) pairs pass unthrottled; losing the cap is better than
// losing a notification.
const maxThrottleWindows = 100_000

type throttleKey struct {
	tenant, notifier, rule string
}

type throttleWindow struct {
	end        time.Time
	sent       int
	suppressed int
	last       Alert // the last alert held back: the summary's sample
}

// summary is a closed window's "N more alerts suppressed" notification,
// waiting for Flush.
type summary struct {
	notifier string
	alert    Alert
}

// throttle counts notifications per (tenant, notifier, rule) in fixed
// windows that open with the first notification.
type throttle struct {
	cfg ThrottleConfig

	mu      sync.Mutex
	open    map[throttleKey]*throttleWindow
	pending []summary

	suppressed atomic.Int64 // alerts held back, for metrics
	summaries  atomic.Int64 // summary notifications produced
}

func newThrottle(cfg ThrottleConfig) *throttle {
	return &throttle{cfg: cfg.withDefaults(), open: map[throttleKey]*throttleWindow{}}
}

// admit reports whether a may be sent through notifier now, counting it
// against the window otherwise.
func (t *throttle) admit(notifier string, a Alert, now time.Time) bool {
	if t.cfg.Burst < 0 {
		return true
	}
	k := throttleKey{tenant: a.Tenant, notifier: notifier, rule: a.Rule.ID}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.open[k]
	if w != nil && !now.Before(w.end) {
		t.closeLocked(k, w, w.end)
		w = nil
	}
	if w == nil {
		if len(t.open) >= maxThrottleWindows {
			return true
		}
		w = &throttleWindow{end: now.Add(t.cfg.Window)}
		t.open[k] = w
	}
	if w.sent < t.cfg.Burst {
		w.sent++
		return true
	}
	w.suppressed++
	w.last = a
	t.suppressed.Add(1)
	return false
}

// due returns the summaries of the windows closed by now, oldest first.
func (t *throttle) due(now time.Time) []summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, w := range t.open {
		if !now.Before(w.end) {
			t.closeLocked(k, w, w.end)
		}
	}
	out := t.pending
	t.pending = nil
	sort.SliceStable(out, func(i, j int) bool { return out[i].alert.Time.Before(out[j].alert.Time) })
	return out
}

// closeLocked forgets a window and, when it held alerts back, queues their
// summary, stamped at the window's close.
func (t *throttle) closeLocked(k throttleKey, w *throttleWindow, at time.Time) {
	delete(t.open, k)
	if w.suppressed == 0 {
		return
	}
	t.summaries.Add(1)
	t.pending = append(t.pending, summary{notifier: k.notifier, alert: summaryAlert(w, t.cfg, at)})
}

// summaryAlert is the notification standing for the alerts a window held
// back: the last of them as a sample, Count and Suppressed set to how many.
func summaryAlert(w *throttleWindow, cfg ThrottleConfig, at time.Time) Alert {
	a := w.last
	a.ID = w.last.ID + "-suppressed"
	a.Count = w.suppressed
	a.Suppressed = w.suppressed
	word := "alerts"
	if w.suppressed == 1 {
		word = "alert"
	}
	a.Summary = fmt.Sprintf("%d more %s suppressed (at most %d notifications per %s for this rule)", w.suppressed, word, cfg.Burst, cfg.Window)
	a.Time = at.UTC()
	return a
}
