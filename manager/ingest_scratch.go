package manager

import (
	"sync"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/store"
)

// ingestScratch is what one upload needs besides its body: the decoded
// events, their rows and the IDs seen. Pooled, because at tens of
// thousands of events a second each batch's fresh megabytes were heap the
// kernel had to fault in and zero (a quarter of the manager's CPU in a
// 10,000-agent bench profile).
type ingestScratch struct {
	evs  []event.Event
	rows []store.EventRow
	seen map[string]bool
}

var ingestScratchPool = sync.Pool{New: func() any {
	return &ingestScratch{seen: make(map[string]bool, 256)}
}}

// put returns the scratch to the pool. The events and rows it still points
// to stay alive until its next use (decodeBatchInto clears the events it
// reuses, and rows are appended over) or until the pool drops it at a
// collection: clearing them here as well would be the same megabyte
// cleared twice per batch.
func (sc *ingestScratch) put() {
	if cap(sc.evs) > maxPooledEvents {
		sc.evs = nil
	}
	if cap(sc.rows) > maxPooledEvents {
		sc.rows = nil
	}
	sc.evs, sc.rows = sc.evs[:0], sc.rows[:0]
	clear(sc.seen)
	ingestScratchPool.Put(sc)
}

// maxPooledEvents bounds what a pooled scratch holds on to.
const maxPooledEvents = 1 << 14
