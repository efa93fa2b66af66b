package notify

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"
)

// ErrDropped is returned by Service.Send when the Dispatcher's queue was
// full (or closed) and the alert was counted as dropped.
var ErrDropped = errors.New("notification dropped: queue full")

// Service is what the manager holds: it builds each stored notifier once,
// keeps it (and its open syslog connection) while its configuration stays
// the same, rebuilds it when the configuration changes, and queues alerts on
// a Dispatcher.
type Service struct {
	d   *Dispatcher
	opt Options
	th  *throttle
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedNotifier // by stored notifier ID
}

type cachedNotifier struct {
	sum [32]byte // of type and settings
	n   Notifier
}

// NewService wraps d. Notifications are throttled per notifier and alert
// rule as opt.Throttle says; call Flush periodically to send the summaries
// of closed windows.
func NewService(d *Dispatcher, opt Options) *Service {
	opt = opt.withDefaults()
	return &Service{d: d, opt: opt, th: newThrottle(opt.Throttle), now: time.Now, cache: map[string]cachedNotifier{}}
}

// Dispatcher returns the Dispatcher, for its Stats.
func (s *Service) Dispatcher() *Dispatcher { return s.d }

// Send queues a for the stored notifier (id, name, type, settings). It
// never blocks; it fails when the settings do not build (a *FieldError
// relative to settings) or the queue is full (ErrDropped). An alert over
// the notifier's throttle for its rule is not sent but counted, into the
// summary Flush sends when the window closes; Send returns nil for it.
func (s *Service) Send(id, name, typ string, settings json.RawMessage, a Alert) error {
	n, err := s.notifier(id, name, typ, settings)
	if err != nil {
		return err
	}
	if !s.th.admit(id, a, s.now()) {
		return nil
	}
	if !s.d.Enqueue(n, a) {
		return ErrDropped
	}
	return nil
}

// Flush queues the summary of every throttle window closed by now ("N more
// alerts suppressed") on the notifier that held the alerts back, and
// returns how many it queued. A notifier deleted meanwhile gets none.
func (s *Service) Flush(now time.Time) int {
	queued := 0
	for _, sum := range s.th.due(now) {
		s.mu.Lock()
		c, ok := s.cache[sum.notifier]
		s.mu.Unlock()
		if ok && s.d.Enqueue(c.n, sum.alert) {
			queued++
		}
	}
	return queued
}

// FlushAll closes every throttle window now and queues the summaries: on
// shutdown, so the counts are not lost with the manager's memory.
func (s *Service) FlushAll() int {
	return s.Flush(time.Now().Add(s.opt.Throttle.Window + time.Hour))
}

// Suppressed is how many alerts the throttle has held back so far.
func (s *Service) Suppressed() int64 { return s.th.suppressed.Load() }

// Summaries is how many summary notifications the throttle has produced.
func (s *Service) Summaries() int64 { return s.th.summaries.Load() }

func (s *Service) notifier(id, name, typ string, settings json.RawMessage) (Notifier, error) {
	h := sha256.New()
	h.Write([]byte(name + "\x00" + typ + "\x00"))
	h.Write(settings)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[id]; ok && c.sum == sum {
		return c.n, nil
	}
	n, err := Build(name, typ, settings, s.opt)
	if err != nil {
		return nil, err
	}
	if old, ok := s.cache[id]; ok {
		closeNotifier(old.n)
	}
	s.cache[id] = cachedNotifier{sum: sum, n: n}
	return n, nil
}

// Forget drops a deleted notifier (closing its connection). Alerts already
// queued for it are still sent.
func (s *Service) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[id]; ok {
		closeNotifier(c.n)
		delete(s.cache, id)
	}
}

func closeNotifier(n Notifier) {
	if c, ok := n.(io.Closer); ok {
		_ = c.Close()
	}
}
