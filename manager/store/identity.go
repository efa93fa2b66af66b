package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// identityCols are the computer columns agent request handlers use
// (authentication, clone detection, the policy key, event stamping and
// alert matching). The heartbeat's reported state (modules, rule packs,
// IPs…) is most of the row's decoding cost and no agent handler reads it.
const identityCols = `id, tenant_id, hostname, machine_id, instance_id, cert_serial, cert_fingerprint, deactivated, policy_id, grp, tags, overrides`

// The EXISTS lets a heartbeat learn it has no commands waiting without a
// second round trip; commands_computer covers it.
const (
	identitySelect  = `SELECT ` + identityCols + ` FROM computers `
	identityPending = `SELECT ` + identityCols + `, EXISTS (SELECT 1 FROM commands WHERE commands.computer_id = computers.id
	AND commands.tenant_id = computers.tenant_id AND commands.acked_at = 0) FROM computers `
	bySerial = `WHERE cert_serial = $1`
	byID     = `WHERE tenant_id = $1 AND id = $2`
)

// ComputerIdentity is what authenticating an agent request reads of its
// computer.
type ComputerIdentity struct {
	// Computer has only ID, TenantID, Host.Hostname, Host.MachineID,
	// Host.InstanceID, CertSerial, CertFingerprint, Deactivated, PolicyID,
	// Group, Tags and Overrides set: use Store.Computer for the rest.
	Computer api.Computer
	// PendingKnown is set when the lookup also checked the commands;
	// HasPending then tells whether any is unacknowledged.
	PendingKnown, HasPending bool
}

// ComputerIdentityBySerial finds the computer a client certificate belongs
// to, reading only the identity columns; withPending also checks, in the
// same query, whether the computer has unacknowledged commands.
func (s *Store) ComputerIdentityBySerial(ctx context.Context, serial string, withPending bool) (ComputerIdentity, error) {
	defer s.observe("computer_by_serial", time.Now())
	return s.identity(ctx, bySerial, withPending, serial)
}

// ComputerIdentityByID is ComputerIdentityBySerial for a computer of the
// tenant by ID (a long-polling heartbeat's re-read on wake-up).
func (s *Store) ComputerIdentityByID(ctx context.Context, tenant, id string, withPending bool) (ComputerIdentity, error) {
	return s.identity(ctx, byID, withPending, tenant, id)
}

func (s *Store) identity(ctx context.Context, where string, withPending bool, args ...any) (ComputerIdentity, error) {
	var id ComputerIdentity
	c := &id.Computer
	var serial, tags, ovr string
	var deact int
	dest := []any{&c.ID, &c.TenantID, &c.Host.Hostname, &c.Host.MachineID, &c.Host.InstanceID, &serial, &c.CertFingerprint, &deact, &c.PolicyID, &c.Group, &tags, &ovr}
	q := identitySelect + where
	if withPending {
		q = identityPending + where
		dest = append(dest, &id.HasPending)
		id.PendingKnown = true
	}
	err := s.hotRow(ctx, q, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ComputerIdentity{}, ErrNotFound
	}
	if err != nil {
		return ComputerIdentity{}, fmt.Errorf("reading computer identity: %w", err)
	}
	c.CertSerial = serial
	c.Deactivated = deact == 1
	if err := unjsSlice(tags, &c.Tags); err != nil {
		return id, fmt.Errorf("decoding computer %s: %w", c.ID, err)
	}
	if err := unjsMap(ovr, &c.Overrides); err != nil {
		return id, fmt.Errorf("decoding computer %s: %w", c.ID, err)
	}
	return id, nil
}

// The JSON columns of a computer are nearly always empty ("[]", "{}",
// "null" or ""); unjsSlice and unjsMap give what unjs (json.Unmarshal)
// would for those without its reflection, and fall back to it otherwise.

func unjsSlice[S ~[]E, E any](s string, v *S) error {
	switch s {
	case "null":
		*v = nil
		return nil
	case "[]":
		*v = S{}
		return nil
	}
	return unjs(s, v)
}

func unjsMap[M ~map[K]V, K comparable, V any](s string, v *M) error {
	switch s {
	case "null":
		*v = nil
		return nil
	case "{}":
		if *v == nil {
			*v = M{}
		}
		return nil
	}
	return unjs(s, v)
}
