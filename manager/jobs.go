package manager

import (
	"context"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// runJobs runs the periodic work: rule-pack distribution schedules, event
// retention, inactive-computer clean-up and the state gauges.
func (m *Manager) runJobs(ctx context.Context) {
	t := time.NewTicker(m.cfg.JobInterval)
	defer t.Stop()
	for {
		m.runJobsOnce(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) runJobsOnce(ctx context.Context, now time.Time) {
	if err := m.hbw.flush(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("storing heartbeats", "err", err)
	}
	if err := m.distributeDue(ctx, now); err != nil && ctx.Err() == nil {
		m.log.Error("distributing rule packs", "err", err)
	}
	tenants, err := m.store.Tenants(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("listing tenants", "err", err)
		}
		return
	}
	for _, t := range tenants {
		st, err := m.store.Settings(ctx, t.ID)
		if err != nil {
			continue
		}
		if st.EventRetentionDays > 0 {
			if _, err := m.store.PruneEvents(ctx, t.ID, now.AddDate(0, 0, -st.EventRetentionDays)); err != nil && ctx.Err() == nil {
				m.log.Error("pruning events", "tenant", t.ID, "err", err)
			}
		}
		if st.InactiveCleanupDays > 0 {
			m.cleanupInactive(ctx, t.ID, now.AddDate(0, 0, -st.InactiveCleanupDays))
		}
	}
	m.refreshGauges(ctx, now)
}

// cleanupInactive removes computers silent since before — what keeps a
// fleet of short-lived cloud instances from piling up as "offline".
func (m *Manager) cleanupInactive(ctx context.Context, tenant string, before time.Time) {
	ids, err := m.store.InactiveComputers(ctx, tenant, before)
	if err != nil {
		m.log.Error("listing inactive computers", "err", err)
		return
	}
	for _, id := range ids {
		if err := m.store.DeleteComputer(ctx, tenant, id); err != nil {
			m.log.Error("removing inactive computer", "computer", id, "err", err)
			continue
		}
		_ = m.store.Audit(ctx, api.AuditEntry{TenantID: tenant, Actor: "system", Action: "computer.cleanup", ObjectType: "computer", ObjectID: id})
	}
}

func (m *Manager) refreshGauges(ctx context.Context, now time.Time) {
	_ = m.hbw.flush(ctx)
	cs, err := m.store.AllComputers(ctx)
	if err != nil {
		return
	}
	settings := map[string]api.Settings{}
	counts := map[string]int{api.StateOnline: 0, api.StateOffline: 0, api.StateWarning: 0, api.StateDeactivated: 0}
	for _, c := range cs {
		st, ok := settings[c.TenantID]
		if !ok {
			st, _ = m.store.Settings(ctx, c.TenantID)
			settings[c.TenantID] = st
		}
		counts[computerState(c, st, now)]++
	}
	for s, n := range counts {
		m.metrics.agents.WithLabelValues(s).Set(float64(n))
	}
	if n, err := m.store.PendingCommandCount(ctx); err == nil {
		m.metrics.commandsPending.Set(float64(n))
	}
}
