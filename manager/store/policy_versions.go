package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/mamori-sec/mamori/api"
)

// RememberPolicy keeps an effective policy by version (first one wins: the
// version is a content hash, so later ones are the same).
func (s *Store) RememberPolicy(ctx context.Context, tenant string, ep api.EffectivePolicy) error {
	_, err := s.exec(ctx, `INSERT INTO policy_versions (tenant_id, version, body, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, version) DO NOTHING`,
		tenant, ep.Version, js(ep), now())
	return err
}

// PolicyVersion reads a remembered effective policy.
func (s *Store) PolicyVersion(ctx context.Context, tenant, version string) (api.EffectivePolicy, error) {
	var body string
	var ep api.EffectivePolicy
	err := s.db.QueryRowContext(ctx, `SELECT body FROM policy_versions WHERE tenant_id = $1 AND version = $2`, tenant, version).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return ep, ErrNotFound
	}
	if err != nil {
		return ep, err
	}
	return ep, json.Unmarshal([]byte(body), &ep)
}
