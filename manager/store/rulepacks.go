package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// PutRulePack stores a verified pack version. Importing the same
// name+version again is a conflict unless the archive is identical.
func (s *Store) PutRulePack(ctx context.Context, tenant string, p api.RulePack, archive []byte) (api.RulePack, error) {
	p.Imported = toTime(now())
	_, err := s.exec(ctx, `INSERT INTO rulepacks (tenant_id, name, version, sha256, description, files, archive, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		tenant, p.Name, p.Version, p.SHA256, p.Description, p.Files, archive, fromTime(p.Imported))
	if isUnique(err) {
		old, gerr := s.RulePack(ctx, tenant, p.Name, p.Version)
		if gerr == nil && old.SHA256 == p.SHA256 {
			return old, nil
		}
		return api.RulePack{}, ErrConflict
	}
	return p, err
}

const packCols = `name, version, sha256, description, files, imported_at, distributed_at`

func scanPack(row interface{ Scan(...any) error }) (api.RulePack, error) {
	var p api.RulePack
	var imp, dist int64
	if err := row.Scan(&p.Name, &p.Version, &p.SHA256, &p.Description, &p.Files, &imp, &dist); err != nil {
		return p, err
	}
	p.Imported = toTime(imp)
	if dist != 0 {
		t := toTime(dist)
		p.Distributed = &t
	}
	return p, nil
}

// RulePack reads one version's metadata.
func (s *Store) RulePack(ctx context.Context, tenant, name, version string) (api.RulePack, error) {
	p, err := scanPack(s.db.QueryRowContext(ctx, `SELECT `+packCols+` FROM rulepacks WHERE tenant_id = $1 AND name = $2 AND version = $3`, tenant, name, version))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// RulePackArchive reads one version's signed archive.
func (s *Store) RulePackArchive(ctx context.Context, tenant, name, version string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT archive FROM rulepacks WHERE tenant_id = $1 AND name = $2 AND version = $3`, tenant, name, version).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return b, err
}

// RulePacks lists every version of every pack of the tenant, newest import
// first.
func (s *Store) RulePacks(ctx context.Context, tenant string) ([]api.RulePack, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+packCols+` FROM rulepacks WHERE tenant_id = $1 ORDER BY name, imported_at DESC`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.RulePack{}
	for rows.Next() {
		p, err := scanPack(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DistributedPacks returns, per pack name, the version agents get now: the
// most recently distributed one.
func (s *Store) DistributedPacks(ctx context.Context, tenant string) (map[string]api.RulePackRef, error) {
	rows, err := s.hotQuery(ctx, `SELECT name, version, sha256, distributed_at FROM rulepacks WHERE tenant_id = $1 AND distributed_at > 0`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]api.RulePackRef{}
	best := map[string]int64{}
	for rows.Next() {
		var r api.RulePackRef
		var d int64
		if err := rows.Scan(&r.Name, &r.Version, &r.SHA256, &d); err != nil {
			return nil, err
		}
		if d > best[r.Name] {
			best[r.Name], out[r.Name] = d, r
		}
	}
	return out, rows.Err()
}

// Schedule reads a pack's schedule ("immediate" when none is set).
func (s *Store) Schedule(ctx context.Context, tenant, name string) (string, error) {
	var sc string
	err := s.db.QueryRowContext(ctx, `SELECT schedule FROM rulepack_schedules WHERE tenant_id = $1 AND name = $2`, tenant, name).Scan(&sc)
	if errors.Is(err, sql.ErrNoRows) {
		return "immediate", nil
	}
	return sc, err
}

// SetSchedule sets a pack's schedule.
func (s *Store) SetSchedule(ctx context.Context, tenant, name, schedule string) error {
	_, err := s.exec(ctx, `INSERT INTO rulepack_schedules (tenant_id, name, schedule) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, name) DO UPDATE SET schedule = excluded.schedule`, tenant, name, schedule)
	return err
}

// PendingPack is a pack version imported after the last distribution.
type PendingPack struct {
	TenantID, Name, Version string
	Imported                time.Time
}

// PendingPacks lists, for every tenant and pack, the newest imported version
// when it is newer than the distributed one.
func (s *Store) PendingPacks(ctx context.Context) ([]PendingPack, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tenant_id, name, version, imported_at, distributed_at FROM rulepacks ORDER BY tenant_id, name, imported_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type key struct{ t, n string }
	newest := map[key]PendingPack{}
	distributed := map[key]bool{}
	var order []key
	for rows.Next() {
		var p PendingPack
		var imp, dist int64
		if err := rows.Scan(&p.TenantID, &p.Name, &p.Version, &imp, &dist); err != nil {
			return nil, err
		}
		p.Imported = toTime(imp)
		k := key{p.TenantID, p.Name}
		if _, ok := newest[k]; !ok {
			order = append(order, k)
		}
		newest[k] = p
		distributed[k] = dist > 0
	}
	var out []PendingPack
	for _, k := range order {
		if !distributed[k] {
			out = append(out, newest[k])
		}
	}
	return out, rows.Err()
}

// Distribute marks a version as the one agents get from now on.
func (s *Store) Distribute(ctx context.Context, tenant, name, version string, at time.Time) error {
	return affected(s.exec(ctx, `UPDATE rulepacks SET distributed_at = $1 WHERE tenant_id = $2 AND name = $3 AND version = $4`, fromTime(at), tenant, name, version))
}
