package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// EventRow is one validated event as stored: the columns the query API
// filters on, and the event's JSON. The ingest handler builds it from the
// request's own bytes, so a batch is never encoded a second time.
type EventRow struct {
	ID       string
	Time     int64 // Unix nanoseconds
	Kind     string
	Module   string
	Severity int32
	RuleID   string
	Message  string
	Data     []byte // the event as JSON
}

// RowOf encodes an event for InsertEventRows.
func RowOf(e *event.Event) (EventRow, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return EventRow{}, fmt.Errorf("encoding event %s: %w", e.ID, err)
	}
	rule := ""
	if e.Rule != nil {
		rule = e.Rule.ID
	}
	return EventRow{ID: e.ID, Time: e.Time.UnixNano(), Kind: string(e.Kind), Module: e.Module, Severity: int32(e.Severity),
		RuleID: rule, Message: e.Message, Data: data}, nil
}

// InsertEvents stores a batch for one computer in one transaction; see
// InsertEventRows.
func (s *Store) InsertEvents(ctx context.Context, tenant, computer string, evs []event.Event) (map[string]bool, error) {
	rows := make([]EventRow, len(evs))
	for i := range evs {
		r, err := RowOf(&evs[i])
		if err != nil {
			return nil, err
		}
		rows[i] = r
	}
	return s.InsertEventRows(ctx, tenant, computer, rows)
}

// InsertEventRows stores a batch for one computer in one transaction,
// committed before it returns. Events whose ID the tenant already has are
// skipped: that is what makes agent retries exactly-once. It returns the
// IDs actually inserted (alerting looks only at those, so a retried batch
// never alerts twice).
func (s *Store) InsertEventRows(ctx context.Context, tenant, computer string, rows []EventRow) (map[string]bool, error) {
	defer s.observe("insert_events", time.Now())
	recv := now()
	if len(rows) == 0 {
		return map[string]bool{}, nil
	}
	if s.dialect == Postgres {
		return s.insertEventsPG(ctx, tenant, computer, rows, recv)
	}
	return s.insertEventsSQLite(ctx, tenant, computer, rows, recv)
}

// insertEventsSQLite runs one prepared single-row INSERT per event inside
// one transaction. A multi-row INSERT would be one statement, but SQLite
// then keeps a statement journal for it (the rows may need undoing on a
// constraint error), and its allocation churn cost more than the
// statements saved.
func (s *Store) insertEventsSQLite(ctx context.Context, tenant, computer string, rows []EventRow, recv int64) (map[string]bool, error) {
	inserted := make(map[string]bool, len(rows))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (tenant_id, id, computer_id, time, kind, module, severity, rule_id, message, data, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, id) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("preparing event insert: %w", err)
		}
		defer stmt.Close()
		for i := range rows {
			e := &rows[i]
			r, err := stmt.ExecContext(ctx, tenant, e.ID, computer, e.Time, e.Kind, e.Module, int(e.Severity), e.RuleID, e.Message, string(e.Data), recv)
			if err != nil {
				return fmt.Errorf("inserting event %s: %w", e.ID, err)
			}
			if n, _ := r.RowsAffected(); n == 1 {
				inserted[e.ID] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

// EventFilter selects events. Zero fields do not filter.
type EventFilter struct {
	From, To    time.Time
	ComputerID  string
	Module      string
	MinSeverity event.Severity
	RuleID      string
	Text        string // case-insensitive substring of the event's JSON
	Cursor      string
	Limit       int
}

// ErrBadCursor is returned for a cursor this store did not make.
var ErrBadCursor = fmt.Errorf("invalid cursor")

// Events returns matching events, newest first, and the cursor of the next
// page ("" when there is none).
func (s *Store) Events(ctx context.Context, tenant string, f EventFilter) ([]event.Event, string, error) {
	defer s.observe("query_events", time.Now())
	q := `SELECT id, time, data FROM events WHERE tenant_id = $1`
	args := []any{tenant}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if !f.From.IsZero() {
		q += ` AND time >= ` + arg(f.From.UnixNano())
	}
	if !f.To.IsZero() {
		q += ` AND time < ` + arg(f.To.UnixNano())
	}
	if f.ComputerID != "" {
		q += ` AND computer_id = ` + arg(f.ComputerID)
	}
	if f.Module != "" {
		q += ` AND module = ` + arg(f.Module)
	}
	if f.MinSeverity > 0 {
		q += ` AND severity >= ` + arg(int(f.MinSeverity))
	}
	if f.RuleID != "" {
		q += ` AND rule_id = ` + arg(f.RuleID)
	}
	if f.Text != "" {
		q += ` AND LOWER(data) LIKE ` + arg("%"+escapeLike(strings.ToLower(f.Text))+"%") + ` ESCAPE '\'`
	}
	if f.Cursor != "" {
		t, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		tp, ip := arg(t), arg(id)
		// The redundant "time <= t" bounds the index scan; the OR alone
		// would make the database filter every newer event first.
		q += ` AND time <= ` + tp + ` AND (time < ` + tp + ` OR (time = ` + tp + ` AND id < ` + ip + `))`
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ` + arg(f.Limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("querying events: %w", err)
	}
	defer rows.Close()
	out := []event.Event{}
	var lastT int64
	var lastID string
	next := ""
	for rows.Next() {
		var id, data string
		var t int64
		if err := rows.Scan(&id, &t, &data); err != nil {
			return nil, "", err
		}
		if len(out) == f.Limit {
			next = encodeCursor(lastT, lastID)
			break
		}
		var e event.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return nil, "", fmt.Errorf("decoding event %s: %w", id, err)
		}
		out = append(out, e)
		lastT, lastID = t, id
	}
	return out, next, rows.Err()
}

// CountEvents counts a tenant's events (tests and the e2e fault checks).
func (s *Store) CountEvents(ctx context.Context, tenant string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE tenant_id = $1`, tenant).Scan(&n)
	return n, err
}

// PruneEvents deletes the tenant's events older than before.
func (s *Store) PruneEvents(ctx context.Context, tenant string, before time.Time) (int64, error) {
	r, err := s.exec(ctx, `DELETE FROM events WHERE tenant_id = $1 AND time < $2`, tenant, before.UnixNano())
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func encodeCursor(t int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), ":")
	t, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return 0, "", ErrBadCursor
	}
	return t, id, nil
}
