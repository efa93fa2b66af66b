package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mamori-sec/mamori/api"
)

const policyCols = `id, tenant_id, parent_id, name, description, heartbeat_seconds, budget, outbox, modules, created_at, updated_at`

func scanPolicy(row interface{ Scan(...any) error }) (api.Policy, error) {
	var p api.Policy
	var budget, outbox, mods string
	var c, u int64
	if err := row.Scan(&p.ID, &p.TenantID, &p.ParentID, &p.Name, &p.Description, &p.HeartbeatSeconds, &budget, &outbox, &mods, &c, &u); err != nil {
		return p, err
	}
	p.Created, p.Updated = toTime(c), toTime(u)
	if err := unjs(budget, &p.Budget); err != nil {
		return p, err
	}
	if err := unjs(outbox, &p.Outbox); err != nil {
		return p, err
	}
	return p, unjs(mods, &p.Modules)
}

// ErrCycle is returned when a parent change would make the tree a loop.
var ErrCycle = errors.New("policy parent would create a cycle")

// PutPolicy creates (empty ID) or replaces a policy. The parent must be a
// policy of the same tenant and must not be a descendant.
func (s *Store) PutPolicy(ctx context.Context, tenant string, p api.Policy) (api.Policy, error) {
	created := p.ID == ""
	if created {
		p.ID = NewID("p_")
	}
	p.TenantID = tenant
	if p.Modules == nil {
		p.Modules = api.PolicyModules{}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for cur, depth := p.ParentID, 0; cur != ""; depth++ {
			if cur == p.ID || depth > 64 {
				return ErrCycle
			}
			var parent string
			err := tx.QueryRowContext(ctx, `SELECT parent_id FROM policies WHERE tenant_id = $1 AND id = $2`, tenant, cur).Scan(&parent)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("parent policy %s: %w", cur, ErrNotFound)
			}
			if err != nil {
				return err
			}
			cur = parent
		}
		t := now()
		if created {
			p.Created = toTime(t)
			p.Updated = p.Created
			_, err := tx.ExecContext(ctx, `INSERT INTO policies (`+policyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				p.ID, tenant, p.ParentID, p.Name, p.Description, p.HeartbeatSeconds, js(p.Budget), js(p.Outbox), js(p.Modules), t, t)
			return err
		}
		var c int64
		if err := tx.QueryRowContext(ctx, `SELECT created_at FROM policies WHERE tenant_id = $1 AND id = $2`, tenant, p.ID).Scan(&c); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		p.Created, p.Updated = toTime(c), toTime(t)
		_, err := tx.ExecContext(ctx, `UPDATE policies SET parent_id = $1, name = $2, description = $3, heartbeat_seconds = $4, budget = $5, outbox = $6, modules = $7, updated_at = $8
			WHERE tenant_id = $9 AND id = $10`, p.ParentID, p.Name, p.Description, p.HeartbeatSeconds, js(p.Budget), js(p.Outbox), js(p.Modules), t, tenant, p.ID)
		return err
	})
	if isUnique(err) {
		return api.Policy{}, fmt.Errorf("policy name %q: %w", p.Name, ErrConflict)
	}
	return p, err
}

// Policy reads one policy of the tenant.
func (s *Store) Policy(ctx context.Context, tenant, id string) (api.Policy, error) {
	p, err := scanPolicy(s.hotRow(ctx, `SELECT `+policyCols+` FROM policies WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// Policies lists a tenant's policies.
func (s *Store) Policies(ctx context.Context, tenant string) ([]api.Policy, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+policyCols+` FROM policies WHERE tenant_id = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.Policy{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PolicyChain returns the policy and its ancestors, root first.
func (s *Store) PolicyChain(ctx context.Context, tenant, id string) ([]api.Policy, error) {
	var chain []api.Policy
	for cur := id; cur != ""; {
		if len(chain) > 64 {
			return nil, ErrCycle
		}
		p, err := s.Policy(ctx, tenant, cur)
		if err != nil {
			return nil, fmt.Errorf("reading policy %s: %w", cur, err)
		}
		chain = append([]api.Policy{p}, chain...)
		cur = p.ParentID
	}
	return chain, nil
}

// ErrInUse is returned when deleting a policy that still has children or
// computers.
var ErrInUse = errors.New("in use")

// DeletePolicy removes a policy that no policy, computer or token uses.
func (s *Store) DeletePolicy(ctx context.Context, tenant, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM policies WHERE tenant_id = $1 AND parent_id = $2) +
			(SELECT COUNT(*) FROM computers WHERE tenant_id = $1 AND policy_id = $2)`, tenant, id).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("policy %s: %w by %d children or computers", id, ErrInUse, n)
		}
		return affected(tx.ExecContext(ctx, `DELETE FROM policies WHERE tenant_id = $1 AND id = $2`, tenant, id))
	})
}

// PolicyByName finds a tenant's policy by name.
func (s *Store) PolicyByName(ctx context.Context, tenant, name string) (api.Policy, error) {
	p, err := scanPolicy(s.hotRow(ctx, `SELECT `+policyCols+` FROM policies WHERE tenant_id = $1 AND name = $2`, tenant, name))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}
