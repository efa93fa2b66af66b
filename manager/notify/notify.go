// Package notify delivers the manager's alerts to people and systems: a
// webhook (signed JSON POST), syslog (RFC 5424 over UDP, TCP or TLS with
// JSON, CEF or LEEF payloads for SIEM parsers) and mail (SMTP with
// STARTTLS). Senders share the Notifier interface; a Dispatcher queues
// alerts with a bound, sends them from worker goroutines with retries and
// back-off, and counts what it sent, retried, failed and dropped, so that
// alerting never slows event ingest down.
package notify

import (
	"context"
	"errors"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// Notifier sends one alert somewhere. Notify must honour ctx; an error
// wrapped with Permanent is not retried.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
	Name() string
}

// Alert is what the manager raises when an alert rule matches.
type Alert struct {
	ID       string      `json:"id"`
	Tenant   string      `json:"tenant"`
	Rule     RuleRef     `json:"rule"`
	Computer ComputerRef `json:"computer"`
	// Events are the events that triggered the alert (one, or a sample
	// for a throttled alert).
	Events []event.Event `json:"events"`
	// Count is how many occurrences the alert stands for: more than
	// len(Events) when repeats were folded by throttling.
	Count int       `json:"count"`
	Time  time.Time `json:"time"`
	// Suppressed is set on a throttle summary: how many alerts of this
	// rule the notifier held back in the window that closed (Count
	// equals it, Events holds the last of them). Summary says so in words.
	Suppressed int    `json:"suppressed,omitempty"`
	Summary    string `json:"summary,omitempty"`
	// URL points at the alert in the console, when the manager knows its
	// public address.
	URL string `json:"url,omitempty"`
}

// RuleRef names the alert rule.
type RuleRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// ComputerRef is the computer the alert is about.
type ComputerRef struct {
	ID       string   `json:"id"`
	Hostname string   `json:"hostname,omitempty"`
	Group    string   `json:"group,omitempty"`
	Tags     []string `json:"tags,omitempty"`
}

// PermanentError marks a failure that retrying cannot fix: a 4xx answer,
// a refused recipient, a bad configuration.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the Dispatcher does not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err (or one it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// hostOf names the host for syslog headers and mail: the event's own host
// name, else the computer's.
func hostOf(a *Alert, ev *event.Event) string {
	if ev.Host != "" {
		return ev.Host
	}
	return a.Computer.Hostname
}
