package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// The batch builder splices IDs and times into pre-encoded events; what it
// writes must decode into events the manager accepts, each with its own ID.
func TestBatchBuilderWritesValidEvents(t *testing.T) {
	bb := &batchBuilder{tmpl: eventTemplates("loadgen-00001", "c-1")}
	seen := map[string]bool{}
	for round := 0; round < 2; round++ {
		var b api.EventBatch
		if err := json.Unmarshal(bb.build(12), &b); err != nil {
			t.Fatalf("batch does not decode: %v", err)
		}
		if len(b.Events) != 12 {
			t.Fatalf("batch has %d events, want 12", len(b.Events))
		}
		for i := range b.Events {
			e := &b.Events[i]
			if err := e.Validate(); err != nil {
				t.Errorf("event %d: %v", i, err)
			}
			if seen[e.ID] {
				t.Errorf("event ID %s repeated", e.ID)
			}
			seen[e.ID] = true
			if time.Since(e.Time) > time.Minute || e.Host != "loadgen-00001" {
				t.Errorf("event %d: time %v host %q", i, e.Time, e.Host)
			}
		}
	}
}

func TestProcReadsSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: not Linux")
	}
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Error(err)
	}
	rss, err := rssBytes(os.Getpid())
	if err != nil || rss <= 0 {
		t.Errorf("rssBytes = %d, %v", rss, err)
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i)*time.Millisecond)
	}
	if got := pct(v, .99); got != 99*time.Millisecond {
		t.Errorf("pct(.99) = %s, want 99ms", got)
	}
	if got := pct(nil, .5); got != 0 {
		t.Errorf("pct(empty) = %s", got)
	}
}
