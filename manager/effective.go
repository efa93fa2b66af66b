package manager

import (
	"context"
	"errors"
	"fmt"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/policy"
	"github.com/mamori-sec/mamori/manager/store"
)

// chainFor returns the policy chain of a computer's policy: its own when
// set, else the tenant's "default".
func (m *Manager) chainFor(ctx context.Context, tenant, policyID string) ([]api.Policy, error) {
	if policyID == "" {
		p, err := m.store.PolicyByName(ctx, tenant, "default")
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		policyID = p.ID
	}
	return m.store.PolicyChain(ctx, tenant, policyID)
}

// effective computes a computer's effective policy and remembers its
// version for diffs.
func (m *Manager) effective(ctx context.Context, c api.Computer) (api.EffectivePolicy, api.ResolvedPolicy, error) {
	chain, err := m.chainFor(ctx, c.TenantID, c.PolicyID)
	if err != nil {
		return api.EffectivePolicy{}, api.ResolvedPolicy{}, fmt.Errorf("computing policy of %s: %w", c.ID, err)
	}
	return m.compute(ctx, c.TenantID, chain, c.Overrides)
}

func (m *Manager) compute(ctx context.Context, tenant string, chain []api.Policy, overrides api.PolicyModules) (api.EffectivePolicy, api.ResolvedPolicy, error) {
	packs, err := m.store.DistributedPacks(ctx, tenant)
	if err != nil {
		return api.EffectivePolicy{}, api.ResolvedPolicy{}, err
	}
	st, err := m.store.Settings(ctx, tenant)
	if err != nil {
		return api.EffectivePolicy{}, api.ResolvedPolicy{}, err
	}
	ep, rp := policy.Compute(policy.Input{Chain: chain, Overrides: overrides, Packs: packs, DefaultHeartbeat: st.DefaultHeartbeatSeconds})
	if err := m.store.RememberPolicy(ctx, tenant, ep); err != nil {
		return ep, rp, err
	}
	return ep, rp, nil
}
