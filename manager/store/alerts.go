package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"

	"github.com/mamori-sec/mamori/api"
)

func itoa(n int) string { return strconv.Itoa(n) }

const alertRuleCols = `id, tenant_id, name, enabled, module, min_severity, rule_id, grp, notifier_ids, created_at`

func scanAlertRule(row interface{ Scan(...any) error }) (api.AlertRule, error) {
	var r api.AlertRule
	var en int
	var ids string
	var c int64
	if err := row.Scan(&r.ID, &r.TenantID, &r.Name, &en, &r.Module, &r.MinSeverity, &r.RuleID, &r.Group, &ids, &c); err != nil {
		return r, err
	}
	r.Enabled, r.Created = en == 1, toTime(c)
	return r, unjs(ids, &r.NotifierIDs)
}

// PutAlertRule creates (empty ID) or replaces an alert rule.
func (s *Store) PutAlertRule(ctx context.Context, tenant string, r api.AlertRule) (api.AlertRule, error) {
	r.TenantID = tenant
	if r.NotifierIDs == nil {
		r.NotifierIDs = []string{}
	}
	if r.ID == "" {
		r.ID, r.Created = NewID("ar_"), toTime(now())
		_, err := s.exec(ctx, `INSERT INTO alert_rules (`+alertRuleCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			r.ID, tenant, r.Name, b2i(r.Enabled), r.Module, r.MinSeverity, r.RuleID, r.Group, js(r.NotifierIDs), fromTime(r.Created))
		return r, err
	}
	old, err := s.AlertRule(ctx, tenant, r.ID)
	if err != nil {
		return r, err
	}
	r.Created = old.Created
	return r, affected(s.exec(ctx, `UPDATE alert_rules SET name = $1, enabled = $2, module = $3, min_severity = $4, rule_id = $5, grp = $6, notifier_ids = $7 WHERE tenant_id = $8 AND id = $9`,
		r.Name, b2i(r.Enabled), r.Module, r.MinSeverity, r.RuleID, r.Group, js(r.NotifierIDs), tenant, r.ID))
}

// AlertRule reads one rule.
func (s *Store) AlertRule(ctx context.Context, tenant, id string) (api.AlertRule, error) {
	r, err := scanAlertRule(s.db.QueryRowContext(ctx, `SELECT `+alertRuleCols+` FROM alert_rules WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// AlertRules lists a tenant's rules.
func (s *Store) AlertRules(ctx context.Context, tenant string) ([]api.AlertRule, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+alertRuleCols+` FROM alert_rules WHERE tenant_id = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.AlertRule{}
	for rows.Next() {
		r, err := scanAlertRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteAlertRule removes a rule.
func (s *Store) DeleteAlertRule(ctx context.Context, tenant, id string) error {
	return affected(s.exec(ctx, `DELETE FROM alert_rules WHERE tenant_id = $1 AND id = $2`, tenant, id))
}

// InsertAlert records an alert once per rule and event.
func (s *Store) InsertAlert(ctx context.Context, a api.Alert) (bool, error) {
	r, err := s.exec(ctx, `INSERT INTO alerts (id, tenant_id, alert_rule_id, event_id, computer_id, severity, message, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (tenant_id, alert_rule_id, event_id) DO NOTHING`,
		a.ID, a.TenantID, a.AlertRuleID, a.EventID, a.ComputerID, a.Severity, a.Message, api.AlertOpen, fromTime(a.Created))
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

const alertCols = `id, tenant_id, alert_rule_id, event_id, computer_id, severity, message, status, created_at, updated_at, updated_by`

func scanAlert(row interface{ Scan(...any) error }) (api.Alert, error) {
	var a api.Alert
	var c, u int64
	err := row.Scan(&a.ID, &a.TenantID, &a.AlertRuleID, &a.EventID, &a.ComputerID, &a.Severity, &a.Message, &a.Status, &c, &u, &a.UpdatedBy)
	a.Created, a.Updated = toTime(c), toTime(u)
	return a, err
}

// Alerts lists a tenant's alerts, newest first; status "" means all.
func (s *Store) Alerts(ctx context.Context, tenant, status string, limit int) ([]api.Alert, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT ` + alertCols + ` FROM alerts WHERE tenant_id = $1`
	args := []any{tenant}
	if status != "" {
		q += ` AND status = $2`
		args = append(args, status)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at DESC LIMIT `+itoa(limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Alert reads one alert.
func (s *Store) Alert(ctx context.Context, tenant, id string) (api.Alert, error) {
	a, err := scanAlert(s.db.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// SetAlertStatus acknowledges or dismisses an alert.
func (s *Store) SetAlertStatus(ctx context.Context, tenant, id, status, by string) error {
	return affected(s.exec(ctx, `UPDATE alerts SET status = $1, updated_at = $2, updated_by = $3 WHERE tenant_id = $4 AND id = $5`, status, now(), by, tenant, id))
}

const notifierCols = `id, tenant_id, name, type, config, created_at`

func scanNotifier(row interface{ Scan(...any) error }) (api.Notifier, error) {
	var n api.Notifier
	var cfg string
	var c int64
	err := row.Scan(&n.ID, &n.TenantID, &n.Name, &n.Type, &cfg, &c)
	n.Config, n.Created = []byte(cfg), toTime(c)
	return n, err
}

// PutNotifier creates (empty ID) or replaces a notifier.
func (s *Store) PutNotifier(ctx context.Context, tenant string, n api.Notifier) (api.Notifier, error) {
	n.TenantID = tenant
	if len(n.Config) == 0 {
		n.Config = []byte("{}")
	}
	if n.ID == "" {
		n.ID, n.Created = NewID("n_"), toTime(now())
		_, err := s.exec(ctx, `INSERT INTO notifiers (`+notifierCols+`) VALUES ($1, $2, $3, $4, $5, $6)`, n.ID, tenant, n.Name, n.Type, string(n.Config), fromTime(n.Created))
		return n, err
	}
	old, err := s.Notifier(ctx, tenant, n.ID)
	if err != nil {
		return n, err
	}
	n.Created = old.Created
	return n, affected(s.exec(ctx, `UPDATE notifiers SET name = $1, type = $2, config = $3 WHERE tenant_id = $4 AND id = $5`, n.Name, n.Type, string(n.Config), tenant, n.ID))
}

// Notifier reads one notifier.
func (s *Store) Notifier(ctx context.Context, tenant, id string) (api.Notifier, error) {
	n, err := scanNotifier(s.db.QueryRowContext(ctx, `SELECT `+notifierCols+` FROM notifiers WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return n, ErrNotFound
	}
	return n, err
}

// Notifiers lists a tenant's notifiers.
func (s *Store) Notifiers(ctx context.Context, tenant string) ([]api.Notifier, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+notifierCols+` FROM notifiers WHERE tenant_id = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.Notifier{}
	for rows.Next() {
		n, err := scanNotifier(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// DeleteNotifier removes a notifier.
func (s *Store) DeleteNotifier(ctx context.Context, tenant, id string) error {
	return affected(s.exec(ctx, `DELETE FROM notifiers WHERE tenant_id = $1 AND id = $2`, tenant, id))
}
