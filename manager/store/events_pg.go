package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mamori-sec/mamori/event"
)

var eventCols = []string{"tenant_id", "id", "computer_id", "time", "kind", "module", "severity", "rule_id", "message", "data", "received_at"}

// insertEventsPG is PostgreSQL's bulk path: COPY the batch into a
// transaction-scoped temporary table, then move it with INSERT … ON
// CONFLICT DO NOTHING, which keeps ingest idempotent at COPY speed.
func (s *Store) insertEventsPG(ctx context.Context, tenant, computer string, evs []event.Event, recv int64) (map[string]bool, error) {
	rows := make([][]any, 0, len(evs))
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encoding event %s: %w", e.ID, err)
		}
		rule := ""
		if e.Rule != nil {
			rule = e.Rule.ID
		}
		rows = append(rows, []any{tenant, e.ID, computer, e.Time.UnixNano(), string(e.Kind), e.Module, int32(e.Severity), rule, e.Message, string(data), recv})
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	inserted := make(map[string]bool, len(evs))
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS events_in (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
			return fmt.Errorf("creating staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events_in"}, eventCols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copying events: %w", err)
		}
		// DISTINCT ON: a batch may repeat an ID; ON CONFLICT cannot see
		// duplicates within one INSERT.
		r, err := tx.Query(ctx, `INSERT INTO events SELECT DISTINCT ON (tenant_id, id) * FROM events_in ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id`)
		if err != nil {
			return fmt.Errorf("inserting events: %w", err)
		}
		for r.Next() {
			var id string
			if err := r.Scan(&id); err != nil {
				r.Close()
				return err
			}
			inserted[id] = true
		}
		r.Close()
		if err := r.Err(); err != nil {
			return fmt.Errorf("inserting events: %w", err)
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}
