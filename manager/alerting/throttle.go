package alerting

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// MaxThrottleEntries bounds the Throttler's memory. Past it, new keys are
// not tracked and their alerts pass: losing dedup is better than losing an
// alert.
const MaxThrottleEntries = 100_000

// Throttler folds repeats: the first alert of a rule and key is sent at
// once, later ones within the rule's window are only counted, and when the
// window has closed Flush returns one Summary carrying the count. It is safe
// for concurrent use. Its state is in memory: a manager restart re-opens
// every window, which costs at most one extra alert per key.
type Throttler struct {
	mu       sync.Mutex
	open     map[throttleKey]*window
	closed   []Summary // windows that closed with repeats, waiting for Flush
	untraced int64
}

type throttleKey struct {
	rule RuleID
	key  string
}

type window struct {
	end        time.Time
	first      time.Time
	last       time.Time
	suppressed int
	sample     event.Event
	computer   string
}

// Summary reports the alerts a closed window held back.
type Summary struct {
	Rule       RuleID
	Key        string
	Suppressed int       // repeats not sent individually
	First      time.Time // when the window opened (the alert that was sent)
	Last       time.Time // the last repeat
	Event      event.Event
	ComputerID string
}

// NewThrottler returns an empty Throttler.
func NewThrottler() *Throttler { return &Throttler{open: map[throttleKey]*window{}} }

// Admit reports whether an alert of rule r for ev should be sent now. A
// rule without throttle is always admitted.
func (t *Throttler) Admit(r *Rule, ev *event.Event, c Computer, now time.Time) bool {
	spec := r.Spec.Throttle
	if spec == nil {
		return true
	}
	k := throttleKey{rule: r.Spec.ID, key: r.ThrottleKey(ev, c)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.open[k]; ok && now.Before(w.end) {
		w.suppressed++
		w.last = now
		w.sample = *ev
		return false
	}
	if w, ok := t.open[k]; ok {
		t.close(k, w)
	} else if len(t.open) >= MaxThrottleEntries {
		t.untraced++
		return true
	}
	t.open[k] = &window{end: now.Add(time.Duration(spec.Window)), first: now, last: now, computer: c.ID}
	return true
}

// Flush returns a Summary for each window that closed by now and held back
// repeats, oldest first, and forgets every closed window.
func (t *Throttler) Flush(now time.Time) []Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, w := range t.open {
		if !now.Before(w.end) {
			t.close(k, w)
		}
	}
	out := t.closed
	t.closed = nil
	sort.Slice(out, func(i, j int) bool {
		if !out[i].First.Equal(out[j].First) {
			return out[i].First.Before(out[j].First)
		}
		return out[i].Rule < out[j].Rule
	})
	return out
}

// close forgets a window, keeping its summary when it held repeats back.
func (t *Throttler) close(k throttleKey, w *window) {
	delete(t.open, k)
	if w.suppressed > 0 {
		t.closed = append(t.closed, Summary{Rule: k.rule, Key: k.key, Suppressed: w.suppressed, First: w.first, Last: w.last, Event: w.sample, ComputerID: w.computer})
	}
}

// Open is the number of windows tracked; Untracked the alerts passed
// because the table was full. Both are for metrics.
func (t *Throttler) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

func (t *Throttler) Untracked() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.untraced
}

// ThrottleKey builds the rule's throttle key for an event: the attributes
// the rule names, joined by a separator no attribute contains.
func (r *Rule) ThrottleKey(ev *event.Event, c Computer) string {
	spec := r.Spec.Throttle
	if spec == nil {
		return ""
	}
	keys := spec.Key
	if len(keys) == 0 {
		keys = []string{"computer"}
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = attr(k, ev, c)
	}
	return strings.Join(parts, "\x1f")
}

func attr(k string, ev *event.Event, c Computer) string {
	switch k {
	case "computer":
		if c.ID != "" {
			return c.ID
		}
		return ev.ComputerID
	case "host":
		return ev.Host
	case "kind":
		return string(ev.Kind)
	case "module":
		return ev.Module
	case "rule":
		if ev.Rule != nil {
			return ev.Rule.ID
		}
	case "src_ip":
		if ev.Src != nil {
			return ev.Src.IP
		}
	case "dst_ip":
		if ev.Dst != nil {
			return ev.Dst.IP
		}
	case "user":
		if ev.User != nil {
			return ev.User.Name
		}
	case "file":
		if ev.File != nil {
			return ev.File.Path
		}
	}
	return ""
}
