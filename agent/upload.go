package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// uploadLoop moves events from the outbox to the manager: read a batch from
// the cursor, upload, acknowledge. A crash or failure before the
// acknowledgement resends the batch; the manager ignores the IDs it has.
func (a *Agent) uploadLoop(ctx context.Context) {
	bo := client.Backoff{Min: a.cfg.RetryMin, Max: a.cfg.RetryMax}
	batch := api.MaxBatchEvents
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for ctx.Err() == nil {
		a.reportDrops()
		n, err := a.uploadOnce(ctx, batch)
		if ctx.Err() != nil {
			return
		}
		var se *client.StatusError
		switch {
		case err == nil && n > 0:
			bo.Reset()
			continue // more may be waiting
		case err == nil:
			select { // queue empty: wait for an append or a tick
			case <-ctx.Done():
				return
			case <-a.wake:
			case <-idle.C:
			}
			continue
		case errors.As(err, &se) && (se.Status == 413 || se.Status == 400) && batch > 1:
			// Too large, or one bad event in it: narrow down.
			batch = max(1, batch/4)
			continue
		case errors.As(err, &se) && se.Status == 400:
			// A single event the manager will never take: it would block
			// the queue forever. Skip it, loudly.
			a.log.Error("manager refuses an event; skipping it", "err", err)
			a.metrics.rejected.Add(1)
			if b, rerr := a.ob.Read(1, 1<<20); rerr == nil {
				a.ob.Ack(b)
			}
			continue
		}
		a.metrics.uploadErrors.Add(1)
		a.log.Debug("uploading events", "err", err)
		sleep(ctx, bo.Next())
	}
}

func (a *Agent) uploadOnce(ctx context.Context, max int) (int, error) {
	b, err := a.ob.Read(max, 8<<20)
	if err != nil {
		return 0, fmt.Errorf("reading outbox: %w", err)
	}
	if len(b.Events) == 0 {
		return 0, nil
	}
	a.mu.Lock()
	cl := a.cl
	a.mu.Unlock()
	res, err := cl.Upload(ctx, b.Events)
	if err != nil {
		return 0, err
	}
	if res.Rejected > 0 {
		a.log.Error("manager rejected events", "count", res.Rejected, "errors", res.Errors)
		a.metrics.rejected.Add(int64(res.Rejected))
	}
	if err := a.ob.Ack(b); err != nil {
		return 0, fmt.Errorf("acknowledging outbox: %w", err)
	}
	a.metrics.uploaded.Add(int64(res.Accepted + res.Duplicates))
	a.mu.Lock()
	a.lastContact = time.Now().UTC()
	a.mu.Unlock()
	return len(b.Events), nil
}

// reportDrops turns the outbox's overflow counter into an event once there
// is room again, so dropped events are never silent (the heartbeat also
// carries the running total).
func (a *Agent) reportDrops() {
	st := a.ob.Stats()
	// Wait for room: under drop_newest a report into a full queue would
	// itself be dropped, and counted, forever.
	margin := min(64<<10, st.MaxBytes/8)
	if st.Dropped <= st.Reported || st.Bytes+margin > st.MaxBytes {
		return
	}
	n := st.Dropped - st.Reported
	a.report(event.KindAgentOutboxDrop, event.SeverityHigh,
		fmt.Sprintf("outbox full: %d events dropped (%d in total) by the overflow policy", n, st.Dropped),
		map[string]string{"dropped": fmt.Sprint(n), "dropped_total": fmt.Sprint(st.Dropped)})
	if err := a.ob.MarkReported(st.Dropped); err != nil {
		a.log.Warn("recording reported drops", "err", err)
	}
}
