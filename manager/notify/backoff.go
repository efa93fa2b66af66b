package notify

import (
	"math/rand/v2"
	"time"
)

// Backoff says how often and how patiently a failed send is retried.
// Attempts counts the first try; the delay before retry n is
// Initial·2^(n-1), capped at Max, with the upper half jittered so that many
// alerts failing together do not retry together.
type Backoff struct {
	Attempts int      `json:"attempts,omitempty"`
	Initial  Duration `json:"initial,omitempty"`
	Max      Duration `json:"max,omitempty"`
}

// DefaultBackoff tries five times over about a minute.
var DefaultBackoff = Backoff{Attempts: 5, Initial: Duration(2 * time.Second), Max: Duration(time.Minute)}

func (b Backoff) withDefaults() Backoff {
	if b.Attempts <= 0 {
		b.Attempts = DefaultBackoff.Attempts
	}
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// Delay is the wait before retry n (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := time.Duration(b.Initial)
	for i := 1; i < n && d < time.Duration(b.Max); i++ {
		d *= 2
	}
	d = min(d, time.Duration(b.Max))
	half := d / 2
	return half + rand.N(half+1)
}

func (b Backoff) validate(prefix string) error {
	switch {
	case b.Attempts < 0 || b.Attempts > 20:
		return fieldErr(prefix+"attempts", "want 1 to 20")
	case b.Initial < 0:
		return fieldErr(prefix+"initial", "must not be negative")
	case b.Max < 0 || b.Max > Duration(time.Hour):
		return fieldErr(prefix+"max", "want at most 1h")
	}
	return nil
}
