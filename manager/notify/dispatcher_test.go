package notify

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// gate is a Notifier that waits until released, to fill the queue.
type gate struct {
	release chan struct{}
	panics  bool
}

func (g *gate) Name() string { return "gate" }

func (g *gate) Notify(ctx context.Context, _ Alert) error {
	if g.panics {
		panic("boom")
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestDispatcherNeverBlocks(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	d := NewDispatcher(DispatcherConfig{Workers: 1, QueueSize: 3})
	start := time.Now()
	accepted := 0
	for i := 0; i < 100; i++ {
		if d.Enqueue(g, Alert{ID: fmt.Sprint(i)}) {
			accepted++
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("100 Enqueue calls on a stuck notifier took %s", took)
	}
	// One in the worker, three queued; the first may or may not have
	// been taken yet.
	if accepted < 3 || accepted > 4 {
		t.Errorf("accepted %d, want 3 or 4", accepted)
	}
	st := d.Stats()
	if st.Dropped != int64(100-accepted) || st.QueueDepth != d.QueueDepth() || st.QueueDepth > 3 {
		t.Errorf("Stats = %+v", st)
	}
	close(g.release)
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Sent != int64(accepted) || st.QueueDepth != 0 {
		t.Errorf("after Close Stats = %+v, want all %d accepted sent", st, accepted)
	}
	if d.Enqueue(g, Alert{}) {
		t.Error("Enqueue after Close accepted an alert")
	}
}

func TestDispatcherCloseDeadlineCancelsSends(t *testing.T) {
	g := &gate{release: make(chan struct{})} // never released
	d := NewDispatcher(DispatcherConfig{Workers: 1})
	d.Enqueue(g, Alert{ID: "stuck"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want deadline exceeded", err)
	}
	if st := d.Stats(); st.Failed != 1 {
		t.Errorf("Stats = %+v, want the cancelled send counted as failed", st)
	}
}

func TestDispatcherSurvivesPanic(t *testing.T) {
	res := newResults()
	d := NewDispatcher(DispatcherConfig{Workers: 1, OnResult: res.add})
	d.Enqueue(&gate{panics: true}, Alert{ID: "p"})
	if r := res.final(t); !IsPermanent(r.Err) {
		t.Errorf("panicking notifier result = %+v, want a permanent error", r)
	}
	srv, _ := flakyServer(t, 0, 0)
	d.Enqueue(webhookConfig(t, srv.URL, ""), testAlert())
	if r := res.final(t); r.Err != nil {
		t.Errorf("the worker did not survive the panic: %+v", r)
	}
	d.Close(context.Background())
}

func TestDispatcherCloseAbandonsPendingRetries(t *testing.T) {
	srv, _ := flakyServer(t, 100, 503)
	n := webhookConfig(t, srv.URL, "")
	n.(*Webhook).backoff = Backoff{Attempts: 5, Initial: Duration(time.Hour), Max: Duration(time.Hour)}
	res := newResults()
	d := NewDispatcher(DispatcherConfig{OnResult: res.add})
	d.Enqueue(n, testAlert())
	deadline := time.Now().Add(5 * time.Second)
	for d.Stats().Retried == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d.Close(context.Background())
	if r := res.final(t); r.Err == nil {
		t.Errorf("abandoned retry reported %+v", r)
	}
	if st := d.Stats(); st.Failed != 1 || st.Retried != 1 {
		t.Errorf("Stats = %+v, want retried 1 then failed 1", st)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Attempts: 5, Initial: Duration(time.Second), Max: Duration(5 * time.Second)}
	for n, cap := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 10: 5 * time.Second} {
		for i := 0; i < 50; i++ {
			if d := b.Delay(n); d < cap/2 || d > cap {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, cap/2, cap)
			}
		}
	}
}

func TestStatsByNotifier(t *testing.T) {
	ok, _ := flakyServer(t, 1, 503)
	bad, _ := flakyServer(t, 100, 404)
	res := newResults()
	d := NewDispatcher(DispatcherConfig{OnResult: res.add})
	defer d.Close(context.Background())
	n1 := webhookConfig(t, ok.URL, "")
	raw := `{"name":"other","type":"webhook","settings":{"url":"` + bad.URL + `"}}`
	c, _ := DecodeConfig([]byte(raw))
	n2, _ := New(c, Options{})
	d.Enqueue(n1, testAlert())
	d.Enqueue(n2, testAlert())
	res.final(t)
	res.final(t)
	got := d.StatsByNotifier()
	if s := got["soc"]; s.Sent != 1 || s.Retried != 1 {
		t.Errorf("soc stats = %+v, want sent 1 retried 1", s)
	}
	if s := got["other"]; s.Failed != 1 || s.Sent != 0 {
		t.Errorf("other stats = %+v, want failed 1", s)
	}
}
