package manager

import "sync"

// hub wakes long-polling heartbeats: a waiter takes the channel of its
// computer and of its tenant; a change closes the channel of the key it
// concerns (a queued command → the computer; a policy or rule pack → the
// tenant). In-process only: with several manager nodes on PostgreSQL the
// heartbeat also re-checks on a timer.
type hub struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func newHub() *hub { return &hub{ch: map[string]chan struct{}{}} }

func (h *hub) watch(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.ch[key]
	if !ok {
		c = make(chan struct{})
		h.ch[key] = c
	}
	return c
}

func (h *hub) notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.ch[key]; ok {
		close(c)
		delete(h.ch, key)
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, c := range h.ch {
		close(c)
		delete(h.ch, k)
	}
}

func computerKey(id string) string { return "c:" + id }
func tenantKey(id string) string   { return "t:" + id }
