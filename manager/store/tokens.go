package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// Reasons a token is refused, for the audit log. The agent is told only
// "invalid token" so it cannot probe which.
var (
	ErrTokenUnknown = errors.New("token unknown")
	ErrTokenExpired = errors.New("token expired")
	ErrTokenUsedUp  = errors.New("token used up")
	ErrTokenRevoked = errors.New("token revoked")
)

// CreateToken makes an enrolment token; the secret is returned once.
func (s *Store) CreateToken(ctx context.Context, tenant string, req api.TokenRequest, ttl time.Duration) (api.EnrollmentToken, error) {
	secret, hash := Secret("mt_")
	if req.MaxUses <= 0 {
		req.MaxUses = 1
	}
	if req.Tags == nil {
		req.Tags = []string{}
	}
	t := api.EnrollmentToken{ID: NewID("tok_"), TenantID: tenant, PolicyID: req.PolicyID, Group: req.Group, Tags: req.Tags,
		Expires: toTime(now()).Add(ttl), MaxUses: req.MaxUses, Created: toTime(now()), Token: secret}
	_, err := s.exec(ctx, `INSERT INTO enrollment_tokens (id, tenant_id, hash, policy_id, grp, tags, expires_at, max_uses, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, tenant, hash, t.PolicyID, t.Group, js(t.Tags), fromTime(t.Expires), t.MaxUses, fromTime(t.Created))
	if err != nil {
		return api.EnrollmentToken{}, fmt.Errorf("creating token: %w", err)
	}
	return t, nil
}

const tokenCols = `id, tenant_id, policy_id, grp, tags, expires_at, max_uses, uses, revoked, created_at`

func scanToken(row interface{ Scan(...any) error }) (api.EnrollmentToken, error) {
	var t api.EnrollmentToken
	var tags string
	var exp, c int64
	var rev int
	if err := row.Scan(&t.ID, &t.TenantID, &t.PolicyID, &t.Group, &tags, &exp, &t.MaxUses, &t.Uses, &rev, &c); err != nil {
		return t, err
	}
	t.Expires, t.Created, t.Revoked = toTime(exp), toTime(c), rev == 1
	return t, unjs(tags, &t.Tags)
}

// Tokens lists a tenant's tokens.
func (s *Store) Tokens(ctx context.Context, tenant string) ([]api.EnrollmentToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+` FROM enrollment_tokens WHERE tenant_id = $1 ORDER BY created_at`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.EnrollmentToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Token reads one token of the tenant.
func (s *Store) Token(ctx context.Context, tenant, id string) (api.EnrollmentToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM enrollment_tokens WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// RevokeToken stops a token from being used.
func (s *Store) RevokeToken(ctx context.Context, tenant, id string) error {
	return affected(s.exec(ctx, `UPDATE enrollment_tokens SET revoked = 1 WHERE tenant_id = $1 AND id = $2`, tenant, id))
}

// Enroll consumes one use of a token and creates the computer in the same
// transaction, so a token with one use left cannot enrol two computers.
// The computer's tenant, policy, group and tags come from the token. On a
// refused token it returns the token (as far as known) and one of the
// ErrToken* reasons.
func (s *Store) Enroll(ctx context.Context, secret string, c api.Computer) (api.Computer, api.EnrollmentToken, error) {
	var tok api.EnrollmentToken
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		tok, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM enrollment_tokens WHERE hash = $1`, HashSecret(secret)))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrTokenUnknown
		}
		if err != nil {
			return err
		}
		switch {
		case tok.Revoked:
			return ErrTokenRevoked
		case !time.Now().Before(tok.Expires):
			return ErrTokenExpired
		case tok.Uses >= tok.MaxUses:
			return ErrTokenUsedUp
		}
		if err := affected(tx.ExecContext(ctx, `UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1 AND uses < max_uses`, tok.ID)); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrTokenUsedUp
			}
			return err
		}
		c.TenantID, c.PolicyID, c.Group, c.Tags = tok.TenantID, tok.PolicyID, tok.Group, tok.Tags
		return insertComputer(ctx, tx, c)
	})
	if err != nil {
		return api.Computer{}, tok, err
	}
	return c, tok, nil
}

// TokenTenant tells which tenant a token secret belongs to, without using
// it (to attribute a refused enrolment in the audit log).
func (s *Store) TokenTenant(ctx context.Context, secret string) string {
	var t string
	_ = s.db.QueryRowContext(ctx, `SELECT tenant_id FROM enrollment_tokens WHERE hash = $1`, HashSecret(secret)).Scan(&t)
	return t
}
