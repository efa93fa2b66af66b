package store

import (
	"context"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// QueueCommand adds a command for a computer of the tenant.
func (s *Store) QueueCommand(ctx context.Context, tenant, computer string, typ string, args map[string]string) (api.Command, error) {
	if _, err := s.Computer(ctx, tenant, computer); err != nil {
		return api.Command{}, err
	}
	c := api.Command{ID: NewID("cmd_"), Type: typ, Args: args, Created: toTime(now())}
	if args == nil {
		args = map[string]string{}
	}
	_, err := s.exec(ctx, `INSERT INTO commands (id, tenant_id, computer_id, type, args, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.ID, tenant, computer, typ, js(args), fromTime(c.Created))
	return c, err
}

// PendingCommands returns the computer's unacknowledged commands and marks
// them delivered. They are delivered again until acknowledged.
func (s *Store) PendingCommands(ctx context.Context, tenant, computer string) ([]api.Command, error) {
	rows, err := s.hotQuery(ctx, `SELECT id, type, args, created_at FROM commands WHERE tenant_id = $1 AND computer_id = $2 AND acked_at = 0 ORDER BY created_at`, tenant, computer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.Command
	for rows.Next() {
		var c api.Command
		var args string
		var created int64
		if err := rows.Scan(&c.ID, &c.Type, &args, &created); err != nil {
			return nil, err
		}
		c.Created = toTime(created)
		if err := unjs(args, &c.Args); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out) > 0 {
		if _, err := s.exec(ctx, `UPDATE commands SET delivered_at = $1 WHERE tenant_id = $2 AND computer_id = $3 AND acked_at = 0 AND delivered_at = 0`, now(), tenant, computer); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AckCommand records a command's outcome, reported by its computer.
func (s *Store) AckCommand(ctx context.Context, tenant, computer, id string, ack api.CommandAck) error {
	return affected(s.exec(ctx, `UPDATE commands SET acked_at = $1, ok = $2, error = $3 WHERE tenant_id = $4 AND computer_id = $5 AND id = $6`,
		now(), b2i(ack.OK), ack.Error, tenant, computer, id))
}

// Commands lists a computer's commands, newest first.
func (s *Store) Commands(ctx context.Context, tenant, computer string) ([]api.CommandStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, type, args, created_at, delivered_at, acked_at, ok, error FROM commands WHERE tenant_id = $1 AND computer_id = $2 ORDER BY created_at DESC LIMIT 200`, tenant, computer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.CommandStatus{}
	for rows.Next() {
		var c api.CommandStatus
		var args string
		var created, deliv, acked int64
		var ok int
		if err := rows.Scan(&c.ID, &c.Type, &args, &created, &deliv, &acked, &ok, &c.Error); err != nil {
			return nil, err
		}
		c.ComputerID, c.Created, c.OK = computer, toTime(created), ok == 1
		if deliv != 0 {
			t := toTime(deliv)
			c.Delivered = &t
		}
		if acked != 0 {
			t := toTime(acked)
			c.Acked = &t
		}
		_ = unjs(args, &c.Args)
		out = append(out, c)
	}
	return out, rows.Err()
}

// PendingCommandCount is the queue depth for the metrics.
func (s *Store) PendingCommandCount(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM commands WHERE acked_at = 0 AND created_at > $1`, fromTime(time.Now().Add(-24*time.Hour))).Scan(&n)
	return n, err
}
