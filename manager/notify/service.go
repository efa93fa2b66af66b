package notify

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"sync"
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

	mu    sync.Mutex
	cache map[string]cachedNotifier // by stored notifier ID
}

type cachedNotifier struct {
	sum [32]byte // of type and settings
	n   Notifier
}

// NewService wraps d.
func NewService(d *Dispatcher, opt Options) *Service {
	return &Service{d: d, opt: opt.withDefaults(), cache: map[string]cachedNotifier{}}
}

// Dispatcher returns the Dispatcher, for its Stats.
func (s *Service) Dispatcher() *Dispatcher { return s.d }

// Send queues a for the stored notifier (id, name, type, settings). It
// never blocks; it fails when the settings do not build (a *FieldError
// relative to settings) or the queue is full (ErrDropped).
func (s *Service) Send(id, name, typ string, settings json.RawMessage, a Alert) error {
	n, err := s.notifier(id, name, typ, settings)
	if err != nil {
		return err
	}
	if !s.d.Enqueue(n, a) {
		return ErrDropped
	}
	return nil
}

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
