package manager

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/manager/store"
)

// hbWriter coalesces heartbeat writes: handlers queue the latest report of
// each computer and a flusher stores them every interval in one
// transaction. A crash loses at most one interval of inventory updates,
// which the next heartbeats repeat anyway. Readers that need them fresh
// (the computers API, jobs) call flush first.
type hbWriter struct {
	st       *store.Store
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string]store.HeartbeatRecord
	flushMu sync.Mutex // one flush at a time, in order
}

func newHBWriter(st *store.Store, log *slog.Logger, interval time.Duration) *hbWriter {
	return &hbWriter{st: st, log: log, interval: interval, pending: map[string]store.HeartbeatRecord{}}
}

func (w *hbWriter) add(r store.HeartbeatRecord) {
	w.mu.Lock()
	w.pending[r.ComputerID] = r
	w.mu.Unlock()
}

// flush stores what is pending now.
func (w *hbWriter) flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	recs := make([]store.HeartbeatRecord, 0, len(w.pending))
	for _, r := range w.pending {
		recs = append(recs, r)
	}
	w.pending = map[string]store.HeartbeatRecord{}
	w.mu.Unlock()
	if err := w.st.RecordHeartbeats(ctx, recs); err != nil {
		// Put them back unless newer ones arrived meanwhile.
		w.mu.Lock()
		for _, r := range recs {
			if _, newer := w.pending[r.ComputerID]; !newer {
				w.pending[r.ComputerID] = r
			}
		}
		w.mu.Unlock()
		return err
	}
	return nil
}

func (w *hbWriter) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Final flush on a clean stop, with a fresh deadline.
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = w.flush(fctx)
			cancel()
			return
		case <-t.C:
			if err := w.flush(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("storing heartbeats", "err", err)
			}
		}
	}
}
