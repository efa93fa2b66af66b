package client

import (
	"testing"
	"time"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	var last time.Duration
	for i := 0; i < 10; i++ {
		d := b.Next()
		if d > 2*time.Second || d < 50*time.Millisecond {
			t.Fatalf("attempt %d: %v out of [50ms, 2s]", i, d)
		}
		last = d
	}
	if last < time.Second {
		t.Errorf("after 10 attempts the delay is %v, want near the 2 s cap", last)
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset: %v, want ≤ 100ms", d)
	}
}

func TestJitterBounds(t *testing.T) {
	for i := 0; i < 100; i++ {
		if d := Jitter(time.Minute, 0.1); d < 54*time.Second || d > 66*time.Second {
			t.Fatalf("Jitter(1m, 0.1) = %v", d)
		}
	}
}
