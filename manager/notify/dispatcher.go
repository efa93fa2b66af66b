package notify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DispatcherConfig sizes the Dispatcher.
type DispatcherConfig struct {
	Workers   int // default 4
	QueueSize int // default 10000
	// AttemptTimeout caps one send, whatever the notifier's own timeout.
	AttemptTimeout time.Duration // default 60s
	// OnResult, when set, hears the outcome of every attempt (from a
	// worker goroutine: keep it quick), so the manager can record delivery
	// state on the alert.
	OnResult func(Result)
	Logger   *slog.Logger
}

// Result is one attempt's outcome. Final is true when no further attempt
// will follow: it succeeded, failed permanently, ran out of attempts or was
// dropped.
type Result struct {
	Notifier string
	AlertID  string
	Attempt  int
	Err      error
	Final    bool
}

// Stats are the Dispatcher's counters since it started.
type Stats struct {
	Enqueued   int64
	Sent       int64
	Failed     int64 // gave up: permanent error or attempts exhausted
	Retried    int64 // attempts scheduled after a retryable failure
	Dropped    int64 // refused because the queue was full or closed
	QueueDepth int
}

// ErrQueueFull is reported (to OnResult) for a retry that found the queue
// full.
var ErrQueueFull = errors.New("notification queue full")

type job struct {
	n       Notifier
	a       Alert
	attempt int
}

// Dispatcher delivers alerts in the background. Enqueue never blocks: when
// the queue is full the alert is counted as dropped, because holding up the
// ingest path that raised it would be worse than losing a notification (the
// alert itself is stored by the manager either way).
type Dispatcher struct {
	cfg   DispatcherConfig
	log   *slog.Logger
	queue chan job

	mu      sync.RWMutex // guards closed, the queue's closing and timers
	closed  bool
	timers  map[*time.Timer]job
	workers sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc

	enqueued, sent, failed, retried, dropped atomic.Int64

	perMu sync.Mutex
	per   map[string]*Stats // by notifier name, for labelled metrics
}

// NewDispatcher starts the workers.
func NewDispatcher(cfg DispatcherConfig) *Dispatcher {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Dispatcher{cfg: cfg, log: log, queue: make(chan job, cfg.QueueSize), timers: map[*time.Timer]job{}, per: map[string]*Stats{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for i := 0; i < cfg.Workers; i++ {
		d.workers.Add(1)
		go d.work()
	}
	return d
}

// Enqueue queues an alert for one notifier and reports whether it was
// accepted. It never blocks.
func (d *Dispatcher) Enqueue(n Notifier, a Alert) bool {
	if d.push(job{n: n, a: a, attempt: 1}) {
		d.enqueued.Add(1)
		return true
	}
	d.dropped.Add(1)
	d.report(Result{Notifier: n.Name(), AlertID: a.ID, Attempt: 1, Err: ErrQueueFull, Final: true})
	return false
}

func (d *Dispatcher) push(j job) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false
	}
	select {
	case d.queue <- j:
		return true
	default:
		return false
	}
}

// QueueDepth is the number of alerts waiting for a worker.
func (d *Dispatcher) QueueDepth() int { return len(d.queue) }

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Enqueued: d.enqueued.Load(), Sent: d.sent.Load(), Failed: d.failed.Load(),
		Retried: d.retried.Load(), Dropped: d.dropped.Load(), QueueDepth: len(d.queue),
	}
}

// StatsByNotifier returns Sent, Failed, Retried and Dropped per notifier
// name (Enqueued and QueueDepth are only kept in total).
func (d *Dispatcher) StatsByNotifier() map[string]Stats {
	d.perMu.Lock()
	defer d.perMu.Unlock()
	out := make(map[string]Stats, len(d.per))
	for k, v := range d.per {
		out[k] = *v
	}
	return out
}

func (d *Dispatcher) work() {
	defer d.workers.Done()
	for j := range d.queue {
		d.attempt(j)
	}
}

func (d *Dispatcher) attempt(j job) {
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.AttemptTimeout)
	err := safeNotify(ctx, j.n, j.a)
	cancel()
	name := j.n.Name()
	if err == nil {
		d.sent.Add(1)
		d.report(Result{Notifier: name, AlertID: j.a.ID, Attempt: j.attempt, Final: true})
		return
	}
	b := DefaultBackoff
	if r, ok := j.n.(retrier); ok {
		b = r.Retry()
	}
	b = b.withDefaults()
	if IsPermanent(err) || j.attempt >= b.Attempts || d.ctx.Err() != nil {
		d.failed.Add(1)
		d.log.Warn("notification failed", "notifier", name, "alert", j.a.ID, "attempt", j.attempt, "err", err)
		d.report(Result{Notifier: name, AlertID: j.a.ID, Attempt: j.attempt, Err: err, Final: true})
		return
	}
	d.report(Result{Notifier: name, AlertID: j.a.ID, Attempt: j.attempt, Err: err})
	d.retried.Add(1)
	next := job{n: j.n, a: j.a, attempt: j.attempt + 1}
	delay := b.Delay(j.attempt)
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > delay {
		delay = min(se.RetryAfter, time.Duration(b.Max))
	}
	d.schedule(next, delay)
}

// schedule re-queues a job after delay without holding a worker: a dead
// endpoint must not starve the others.
func (d *Dispatcher) schedule(j job, delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.giveUp(j, errors.New("dispatcher closed before retry"))
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		d.mu.Lock()
		_, pending := d.timers[t]
		delete(d.timers, t)
		d.mu.Unlock()
		if !pending {
			return // Close took it
		}
		if !d.push(j) {
			d.giveUp(j, ErrQueueFull)
		}
	})
	d.timers[t] = j
}

func (d *Dispatcher) giveUp(j job, err error) {
	d.failed.Add(1)
	d.report(Result{Notifier: j.n.Name(), AlertID: j.a.ID, Attempt: j.attempt, Err: err, Final: true})
}

func (d *Dispatcher) report(r Result) {
	d.perMu.Lock()
	st := d.per[r.Notifier]
	if st == nil {
		st = &Stats{}
		d.per[r.Notifier] = st
	}
	switch {
	case r.Final && r.Err == nil:
		st.Sent++
	case r.Final && errors.Is(r.Err, ErrQueueFull) && r.Attempt == 1:
		st.Dropped++
	case r.Final:
		st.Failed++
	default:
		st.Retried++
	}
	d.perMu.Unlock()
	if d.cfg.OnResult != nil {
		d.cfg.OnResult(r)
	}
}

// safeNotify keeps a panicking notifier from killing its worker.
func safeNotify(ctx context.Context, n Notifier, a Alert) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(errors.New("notifier panicked"))
		}
	}()
	return n.Notify(ctx, a)
}

// Close stops accepting alerts, abandons pending retries (counted as
// failed), and waits for the workers to empty the queue; when ctx ends
// first, in-flight sends are cancelled and Close returns ctx's error.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	pending := make([]job, 0, len(d.timers))
	for t, j := range d.timers {
		// A timer that already fired finds itself gone from the map and
		// does nothing, so every job listed here is accounted for once.
		t.Stop()
		pending = append(pending, j)
		delete(d.timers, t)
	}
	close(d.queue)
	d.mu.Unlock()
	for _, j := range pending {
		d.giveUp(j, errors.New("dispatcher closed before retry"))
	}
	done := make(chan struct{})
	go func() { d.workers.Wait(); close(done) }()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel()
		<-done
		return ctx.Err()
	}
}
