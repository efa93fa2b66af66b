package agent

import (
	"sync"
	"sync/atomic"
)

// metrics are the agent's own counters, exposed in Status and on the
// optional Prometheus endpoint.
type metrics struct {
	a            *Agent
	heartbeats   atomic.Int64
	uploaded     atomic.Int64
	rejected     atomic.Int64
	uploadErrors atomic.Int64
	appendErrors atomic.Int64

	mu     sync.Mutex
	events map[string]int64 // by module
}

func newMetrics(a *Agent) *metrics { return &metrics{a: a, events: map[string]int64{}} }

func (m *metrics) countEvent(module string) {
	m.mu.Lock()
	m.events[module]++
	m.mu.Unlock()
}
