package modules

import (
	"context"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
)

// placeholder stands in for a module whose engine is not wired yet: it
// reports itself unavailable with a reason instead of pretending to work.
type placeholder struct {
	name string
	mu   sync.Mutex
	st   agent.ModuleStatus
}

func newPlaceholder(name string) *placeholder {
	return &placeholder{name: name, st: agent.ModuleStatus{Name: name, State: agent.StateUnavailable, Reason: "engine not built into this version", Since: time.Now()}}
}

func (p *placeholder) Name() string                                      { return p.name }
func (p *placeholder) Configure(context.Context, agent.ModuleSpec) error { return nil }
func (p *placeholder) Status() agent.ModuleStatus                        { p.mu.Lock(); defer p.mu.Unlock(); return p.st }
func (p *placeholder) Run(ctx context.Context, _ func(event.Event)) error {
	return agent.Unavailable("engine not built into this version")
}
