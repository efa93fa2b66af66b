// Package response is the active-response contract: a detection engine (log
// inspection, reconnaissance detection, network IPS) asks for a source to be
// blocked for a while, and whoever holds the host firewall does it, locally,
// with no round trip to the manager. Like event, it imports nothing of ours.
package response

import (
	"context"
	"net/netip"
	"time"
)

// Block is one request: block Addr (a host or a network) for TTL.
type Block struct {
	Addr   netip.Prefix
	TTL    time.Duration
	Reason string // rule ID or a short text, shown in `mamori firewall blocked`
	Module string // who asked
}

// Blocker carries out block requests. The firewall module implements it; the
// agent hands it to every module. Block must not wait on slow I/O: callers
// sit on detection hot paths.
type Blocker interface {
	Block(ctx context.Context, b Block) error
	Unblock(ctx context.Context, addr netip.Prefix) error
}

// Discard is a Blocker that does nothing, for one-shot commands and hosts
// without a firewall module.
type Discard struct{}

func (Discard) Block(context.Context, Block) error          { return nil }
func (Discard) Unblock(context.Context, netip.Prefix) error { return nil }
