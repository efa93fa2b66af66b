package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

var eventCols = []string{"tenant_id", "id", "computer_id", "time", "kind", "module", "severity", "rule_id", "message", "data", "received_at"}

// pgIngestSlots bounds the event COPYs running at once. Every COPY inserts
// at the right edge of the same three indexes, so concurrent ones fight
// over the same few pages, while too few leave PostgreSQL idle between a
// commit and the next COPY. With 10,000 agents heartbeating on the 2-core
// bench, 8 beat 2 (42.1k vs 30.6k events/s) when PostgreSQL's own
// overheads were larger; once its WAL was recycled and its shared memory
// on huge pages, 4 beat 8 (54.7k vs 48.8k events/s; its CPU per 1000
// events 18.0 vs 21.8 ms). MAMORI_PG_INGEST_WRITERS overrides it.
var pgIngestSlots = make(chan struct{}, pgIngestWriters())

func pgIngestWriters() int {
	if n, err := strconv.Atoi(os.Getenv("MAMORI_PG_INGEST_WRITERS")); err == nil && n > 0 {
		return n
	}
	return 4
}

// pgUniqueViolation is SQLSTATE unique_violation.
const pgUniqueViolation = "23505"

// insertEventsPG is PostgreSQL's bulk path. Nearly every batch is new
// events, so it first binary-COPYs the batch straight into events: one
// pass, no staging table, no sort. The primary key still guards
// idempotence: when any ID is already stored (an agent's retry, or a batch
// that repeats an ID), COPY fails with a unique violation, nothing of it
// stays, and the batch goes the careful way (insertEventsPGMerge).
func (s *Store) insertEventsPG(ctx context.Context, tenant, computer string, rows []EventRow, recv int64) (map[string]bool, error) {
	select {
	case pgIngestSlots <- struct{}{}:
		defer func() { <-pgIngestSlots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var inserted map[string]bool
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		buf := pgCopyBufs.Get().(*pgCopyBuf)
		defer pgCopyBufs.Put(buf)
		buf.b = encodeEventsCopy(buf.b[:0], tenant, computer, recv, rows)
		err := copyEventsPG(ctx, pc, buf.b)
		var pe *pgconn.PgError
		switch {
		case err == nil:
			inserted = make(map[string]bool, len(rows))
			for i := range rows {
				inserted[rows[i].ID] = true
			}
			return nil
		case errors.As(err, &pe) && pe.Code == pgUniqueViolation:
			inserted, err = mergeEventsPG(ctx, pc, buf.b, len(rows))
			return err
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

func copyEventsPG(ctx context.Context, pc *pgx.Conn, stream []byte) error {
	tx, err := pc.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := copyEvents(ctx, pc.PgConn(), "events", stream); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing events: %w", err)
	}
	return nil
}

// mergeEventsPG COPYs the batch into a transaction-scoped temporary table,
// then moves it with INSERT … ON CONFLICT DO NOTHING, which stores only the
// IDs the tenant does not have yet and says which those were.
func mergeEventsPG(ctx context.Context, pc *pgx.Conn, stream []byte, n int) (map[string]bool, error) {
	inserted := make(map[string]bool, n)
	tx, err := pc.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS events_in (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return nil, fmt.Errorf("creating staging table: %w", err)
	}
	if _, err := copyEvents(ctx, pc.PgConn(), "events_in", stream); err != nil {
		return nil, err
	}
	// DISTINCT ON: a batch may repeat an ID; ON CONFLICT cannot see
	// duplicates within one INSERT.
	r, err := tx.Query(ctx, `INSERT INTO events SELECT DISTINCT ON (tenant_id, id) * FROM events_in ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id`)
	if err != nil {
		return nil, fmt.Errorf("inserting events: %w", err)
	}
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			r.Close()
			return nil, err
		}
		inserted[id] = true
	}
	r.Close()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("inserting events: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing events: %w", err)
	}
	return inserted, nil
}
