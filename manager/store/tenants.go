package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/mamori-sec/mamori/api"
)

// CreateTenant adds a tenant with default settings.
func (s *Store) CreateTenant(ctx context.Context, name string) (api.Tenant, error) {
	t := api.Tenant{ID: NewID("t_"), Name: name, Created: toTime(now())}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)`, t.ID, t.Name, fromTime(t.Created)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tenant_settings (tenant_id) VALUES ($1)`, t.ID)
		return err
	})
	if isUnique(err) {
		return api.Tenant{}, fmt.Errorf("creating tenant %q: %w", name, ErrConflict)
	}
	if err != nil {
		return api.Tenant{}, fmt.Errorf("creating tenant: %w", err)
	}
	return t, nil
}

// TenantByName finds a tenant.
func (s *Store) TenantByName(ctx context.Context, name string) (api.Tenant, error) {
	return s.tenant(ctx, `name = $1`, name)
}

// Tenant finds a tenant by ID.
func (s *Store) Tenant(ctx context.Context, id string) (api.Tenant, error) {
	return s.tenant(ctx, `id = $1`, id)
}

func (s *Store) tenant(ctx context.Context, where string, arg any) (api.Tenant, error) {
	var t api.Tenant
	var c int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE `+where, arg).Scan(&t.ID, &t.Name, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	t.Created = toTime(c)
	return t, err
}

// Tenants lists all tenants.
func (s *Store) Tenants(ctx context.Context) ([]api.Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_at FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	defer rows.Close()
	out := []api.Tenant{}
	for rows.Next() {
		var t api.Tenant
		var c int64
		if err := rows.Scan(&t.ID, &t.Name, &c); err != nil {
			return nil, err
		}
		t.Created = toTime(c)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Settings reads a tenant's settings.
func (s *Store) Settings(ctx context.Context, tenant string) (api.Settings, error) {
	var st api.Settings
	err := s.hotRow(ctx, `SELECT event_retention_days, offline_after_missed, inactive_cleanup_days, default_heartbeat_seconds FROM tenant_settings WHERE tenant_id = $1`, tenant).
		Scan(&st.EventRetentionDays, &st.OfflineAfterMissed, &st.InactiveCleanupDays, &st.DefaultHeartbeatSeconds)
	if errors.Is(err, sql.ErrNoRows) {
		return st, ErrNotFound
	}
	return st, err
}

// PutSettings replaces a tenant's settings.
func (s *Store) PutSettings(ctx context.Context, tenant string, st api.Settings) error {
	_, err := s.exec(ctx, `UPDATE tenant_settings SET event_retention_days = $1, offline_after_missed = $2, inactive_cleanup_days = $3, default_heartbeat_seconds = $4 WHERE tenant_id = $5`,
		st.EventRetentionDays, st.OfflineAfterMissed, st.InactiveCleanupDays, st.DefaultHeartbeatSeconds, tenant)
	return err
}

// Secret returns a random secret with a prefix and its storage hash.
func Secret(prefix string) (secret, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	secret = prefix + hex.EncodeToString(b[:])
	return secret, HashSecret(secret)
}

// HashSecret is how API keys and tokens are stored: sha256 is enough for
// 256-bit random secrets (no dictionary to attack).
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateAPIKey makes a key; the secret is returned once in Key.
func (s *Store) CreateAPIKey(ctx context.Context, tenant, name string, admin bool) (api.APIKey, error) {
	secret, hash := Secret("mk_")
	k := api.APIKey{ID: NewID("k_"), TenantID: tenant, Name: name, SystemAdmin: admin, Created: toTime(now()), Key: secret}
	_, err := s.exec(ctx, `INSERT INTO api_keys (id, tenant_id, name, hash, system_admin, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, tenant, name, hash, b2i(admin), fromTime(k.Created))
	if err != nil {
		return api.APIKey{}, fmt.Errorf("creating api key: %w", err)
	}
	return k, nil
}

// APIKeyBySecret authenticates a key.
func (s *Store) APIKeyBySecret(ctx context.Context, secret string) (api.APIKey, error) {
	var k api.APIKey
	var admin, revoked int
	var c int64
	err := s.hotRow(ctx, `SELECT id, tenant_id, name, system_admin, revoked, created_at FROM api_keys WHERE hash = $1`, HashSecret(secret)).
		Scan(&k.ID, &k.TenantID, &k.Name, &admin, &revoked, &c)
	if errors.Is(err, sql.ErrNoRows) || revoked == 1 {
		return k, ErrNotFound
	}
	k.SystemAdmin, k.Created = admin == 1, toTime(c)
	return k, err
}

// APIKeys lists a tenant's keys (never their secrets).
func (s *Store) APIKeys(ctx context.Context, tenant string) ([]api.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, tenant_id, name, system_admin, created_at FROM api_keys WHERE tenant_id = $1 AND revoked = 0 ORDER BY created_at`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.APIKey{}
	for rows.Next() {
		var k api.APIKey
		var admin int
		var c int64
		if err := rows.Scan(&k.ID, &k.TenantID, &k.Name, &admin, &c); err != nil {
			return nil, err
		}
		k.SystemAdmin, k.Created = admin == 1, toTime(c)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey disables a key of the tenant.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string) error {
	return affected(s.exec(ctx, `UPDATE api_keys SET revoked = 1 WHERE tenant_id = $1 AND id = $2 AND revoked = 0`, tenant, id))
}

func affected(r sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
