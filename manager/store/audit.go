package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// Audit appends an entry. The table refuses UPDATE and DELETE (a trigger
// in SQLite, rules in PostgreSQL), so the log is append-only below the API
// too.
func (s *Store) Audit(ctx context.Context, e api.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	detail := "null"
	if len(e.Detail) > 0 {
		detail = string(e.Detail)
	}
	_, err := s.exec(ctx, `INSERT INTO audit_log (tenant_id, at, actor, action, object_type, object_id, remote, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.TenantID, fromTime(e.Time), e.Actor, e.Action, e.ObjectType, e.ObjectID, e.Remote, detail)
	return err
}

// AuditLog lists a tenant's entries, newest first, before the given ID
// (0 = from the newest).
func (s *Store) AuditLog(ctx context.Context, tenant string, before int64, limit int) ([]api.AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT id, tenant_id, at, actor, action, object_type, object_id, remote, detail FROM audit_log WHERE tenant_id = $1`
	args := []any{tenant}
	if before > 0 {
		q += ` AND id < $2`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ` + itoa(limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.AuditEntry{}
	for rows.Next() {
		var e api.AuditEntry
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &e.TenantID, &at, &e.Actor, &e.Action, &e.ObjectType, &e.ObjectID, &e.Remote, &detail); err != nil {
			return nil, err
		}
		e.Time = toTime(at)
		if detail != "null" {
			e.Detail = json.RawMessage(detail)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
