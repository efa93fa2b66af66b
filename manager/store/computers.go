package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mamori-sec/mamori/api"
)

func insertComputer(ctx context.Context, tx *sql.Tx, c api.Computer) error {
	if c.Tags == nil {
		c.Tags = []string{}
	}
	if c.Host.IPs == nil {
		c.Host.IPs = []string{}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO computers (id, tenant_id, hostname, machine_id, instance_id, os, kernel, arch, ips, agent_version,
		cert_serial, cert_fingerprint, cert_not_after, policy_id, grp, tags, enrolled_at, last_heartbeat)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		c.ID, c.TenantID, c.Host.Hostname, c.Host.MachineID, c.Host.InstanceID, c.Host.OS, c.Host.Kernel, c.Host.Arch, js(c.Host.IPs), c.Host.AgentVersion,
		c.CertSerial, c.CertFingerprint, fromTime(c.CertNotAfter), c.PolicyID, c.Group, js(c.Tags), fromTime(c.Enrolled), fromTime(c.Enrolled))
	return err
}

const computerCols = `id, tenant_id, hostname, machine_id, instance_id, os, kernel, arch, ips, agent_version, cert_serial, cert_fingerprint, cert_not_after,
	deactivated, policy_id, grp, tags, applied_policy_version, policy_error, modules, rulepacks, queue_depth, dropped, clock_skew_ms, overrides, last_heartbeat, enrolled_at`

func scanComputer(row interface{ Scan(...any) error }) (api.Computer, error) {
	var c api.Computer
	var ips, tags, mods, packs, ovr string
	var notAfter, last, enrolled, skew int64
	var deact int
	err := row.Scan(&c.ID, &c.TenantID, &c.Host.Hostname, &c.Host.MachineID, &c.Host.InstanceID, &c.Host.OS, &c.Host.Kernel, &c.Host.Arch, &ips, &c.Host.AgentVersion,
		&c.CertSerial, &c.CertFingerprint, &notAfter, &deact, &c.PolicyID, &c.Group, &tags, &c.AppliedPolicyVersion, &c.PolicyError,
		&mods, &packs, &c.QueueDepth, &c.Dropped, &skew, &ovr, &last, &enrolled)
	if err != nil {
		return c, err
	}
	c.CertNotAfter, c.LastHeartbeat, c.Enrolled = toTime(notAfter), toTime(last), toTime(enrolled)
	c.Deactivated = deact == 1
	c.ClockSkewSeconds = float64(skew) / 1000
	if err := errors.Join(unjsSlice(ips, &c.Host.IPs), unjsSlice(tags, &c.Tags), unjsSlice(mods, &c.Modules),
		unjsSlice(packs, &c.RulePacks), unjsMap(ovr, &c.Overrides)); err != nil {
		return c, fmt.Errorf("decoding computer %s: %w", c.ID, err)
	}
	return c, nil
}

// Computer reads one computer of the tenant.
func (s *Store) Computer(ctx context.Context, tenant, id string) (api.Computer, error) {
	c, err := scanComputer(s.hotRow(ctx, `SELECT `+computerCols+` FROM computers WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

// ComputerBySerial finds the computer a client certificate belongs to.
func (s *Store) ComputerBySerial(ctx context.Context, serial string) (api.Computer, error) {
	defer s.observe("computer_by_serial", time.Now())
	c, err := scanComputer(s.hotRow(ctx, `SELECT `+computerCols+` FROM computers WHERE cert_serial = $1`, serial))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

// ComputerFilter narrows a computer list.
type ComputerFilter struct {
	Group    string
	PolicyID string
	Hostname string
}

// Computers lists a tenant's computers.
func (s *Store) Computers(ctx context.Context, tenant string, f ComputerFilter) ([]api.Computer, error) {
	q := `SELECT ` + computerCols + ` FROM computers WHERE tenant_id = $1`
	args := []any{tenant}
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			q += fmt.Sprintf(" AND %s = $%d", col, len(args))
		}
	}
	add("grp", f.Group)
	add("policy_id", f.PolicyID)
	add("hostname", f.Hostname)
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY hostname, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing computers: %w", err)
	}
	defer rows.Close()
	out := []api.Computer{}
	for rows.Next() {
		c, err := scanComputer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// AllComputers lists every computer of every tenant (jobs and metrics).
func (s *Store) AllComputers(ctx context.Context) ([]api.Computer, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+computerCols+` FROM computers`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.Computer
	for rows.Next() {
		c, err := scanComputer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// HeartbeatRecord is one heartbeat to store.
type HeartbeatRecord struct {
	TenantID, ComputerID string
	Heartbeat            api.Heartbeat
	Skew                 time.Duration
	At                   time.Time
}

// RecordHeartbeat stores what an agent reported.
func (s *Store) RecordHeartbeat(ctx context.Context, c api.Computer, hb api.Heartbeat, skew time.Duration, at time.Time) error {
	return s.RecordHeartbeats(ctx, []HeartbeatRecord{{TenantID: c.TenantID, ComputerID: c.ID, Heartbeat: hb, Skew: skew, At: at}})
}

// RecordHeartbeats stores many heartbeats in one transaction: the manager
// coalesces them, since one write per heartbeat would make the database's
// single writer the limit of how many agents it serves.
func (s *Store) RecordHeartbeats(ctx context.Context, recs []HeartbeatRecord) error {
	if len(recs) == 0 {
		return nil
	}
	defer s.observe("record_heartbeats", time.Now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE computers SET hostname = $1, os = $2, kernel = $3, arch = $4, ips = $5, agent_version = $6,
		applied_policy_version = $7, policy_error = $8, modules = $9, rulepacks = $10, queue_depth = $11, dropped = $12, clock_skew_ms = $13, last_heartbeat = $14
		WHERE tenant_id = $15 AND id = $16`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range recs {
			hb := r.Heartbeat
			h := hb.Host
			if h.IPs == nil {
				h.IPs = []string{}
			}
			mods, packs := hb.Modules, hb.RulePacks
			if mods == nil {
				mods = []api.ModuleState{}
			}
			if packs == nil {
				packs = []api.RulePackRef{}
			}
			if _, err := stmt.ExecContext(ctx, h.Hostname, h.OS, h.Kernel, h.Arch, js(h.IPs), h.AgentVersion, hb.PolicyVersion, hb.PolicyError, js(mods), js(packs),
				hb.QueueDepth, hb.Dropped, r.Skew.Milliseconds(), fromTime(r.At), r.TenantID, r.ComputerID); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetCertificate records a renewed certificate: the old serial stops
// working at once.
func (s *Store) SetCertificate(ctx context.Context, tenant, id, serial, fingerprint string, notAfter time.Time) error {
	return affected(s.exec(ctx, `UPDATE computers SET cert_serial = $1, cert_fingerprint = $2, cert_not_after = $3 WHERE tenant_id = $4 AND id = $5`,
		serial, fingerprint, fromTime(notAfter), tenant, id))
}

// SetDeactivated deactivates (or reactivates) a computer.
func (s *Store) SetDeactivated(ctx context.Context, tenant, id string, deactivated bool) error {
	return affected(s.exec(ctx, `UPDATE computers SET deactivated = $1 WHERE tenant_id = $2 AND id = $3`, b2i(deactivated), tenant, id))
}

// PatchComputer changes assignment fields.
func (s *Store) PatchComputer(ctx context.Context, tenant, id string, p api.ComputerPatch) (api.Computer, error) {
	var out api.Computer
	err := s.tx(ctx, func(tx *sql.Tx) error {
		c, err := scanComputer(tx.QueryRowContext(ctx, `SELECT `+computerCols+` FROM computers WHERE tenant_id = $1 AND id = $2`, tenant, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if p.PolicyID != nil {
			c.PolicyID = *p.PolicyID
		}
		if p.Group != nil {
			c.Group = *p.Group
		}
		if p.Tags != nil {
			c.Tags = *p.Tags
		}
		if p.Overrides != nil {
			c.Overrides = *p.Overrides
		}
		if c.Tags == nil {
			c.Tags = []string{}
		}
		if c.Overrides == nil {
			c.Overrides = api.PolicyModules{}
		}
		_, err = tx.ExecContext(ctx, `UPDATE computers SET policy_id = $1, grp = $2, tags = $3, overrides = $4 WHERE tenant_id = $5 AND id = $6`,
			c.PolicyID, c.Group, js(c.Tags), js(c.Overrides), tenant, id)
		out = c
		return err
	})
	return out, err
}

// DeleteComputer removes a computer and its pending commands (its events
// stay until retention removes them).
func (s *Store) DeleteComputer(ctx context.Context, tenant, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := affected(tx.ExecContext(ctx, `DELETE FROM computers WHERE tenant_id = $1 AND id = $2`, tenant, id)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM commands WHERE tenant_id = $1 AND computer_id = $2`, tenant, id)
		return err
	})
}

// InactiveComputers lists the tenant's computers silent since before.
func (s *Store) InactiveComputers(ctx context.Context, tenant string, before time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM computers WHERE tenant_id = $1 AND last_heartbeat < $2`, tenant, fromTime(before))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
