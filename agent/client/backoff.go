package client

import (
	"math/rand/v2"
	"time"
)

// Backoff yields exponentially growing delays with jitter, so that a
// thousand agents cut off by the same outage do not come back in lockstep.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns the next delay: Min·2^n capped at Max, then a random value
// in its upper half ("equal jitter").
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	half := d / 2
	return half + rand.N(half+1)
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Jitter returns d spread by ±frac (0.1 = ±10 %).
func Jitter(d time.Duration, frac float64) time.Duration {
	if d <= 0 || frac <= 0 {
		return d
	}
	spread := time.Duration(float64(d) * frac)
	return d - spread + rand.N(2*spread+1)
}
