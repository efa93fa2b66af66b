package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

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

// policyCacheTTL bounds how long a cached effective policy is trusted when
// the change was made on another manager node (this node's own changes
// invalidate at once).
const policyCacheTTL = 5 * time.Second

// policyCache keeps computed effective policies, so a heartbeat costs two
// queries instead of eight. Entries are keyed by tenant, policy and
// overrides, and dropped when the tenant's generation moves (a policy,
// rule pack or setting changed) or after policyCacheTTL.
type policyCache struct {
	mu      sync.Mutex
	gen     map[string]uint64
	entries map[string]cachedPolicy
}

type cachedPolicy struct {
	ep  api.EffectivePolicy
	rp  api.ResolvedPolicy
	gen uint64
	at  time.Time
}

func (pc *policyCache) invalidate(tenant string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.gen == nil {
		pc.gen = map[string]uint64{}
	}
	pc.gen[tenant]++
	for k, e := range pc.entries {
		if e.gen != pc.gen[tenant] && len(k) > len(tenant) && k[:len(tenant)+1] == tenant+"|" {
			delete(pc.entries, k)
		}
	}
}

func (pc *policyCache) get(key, tenant string) (cachedPolicy, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	e, ok := pc.entries[key]
	if !ok || e.gen != pc.gen[tenant] || time.Since(e.at) > policyCacheTTL {
		return e, false
	}
	return e, true
}

func (pc *policyCache) put(key, tenant string, e cachedPolicy, gen uint64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.entries == nil {
		pc.entries = map[string]cachedPolicy{}
	}
	if gen != pc.gen[tenant] {
		return // changed while we computed
	}
	if len(pc.entries) > 100000 {
		pc.entries = map[string]cachedPolicy{}
	}
	e.gen = gen
	pc.entries[key] = e
}

func (pc *policyCache) generation(tenant string) uint64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.gen[tenant]
}

// changed tells every long-poll and cache of the tenant that its policies,
// rule packs or settings changed.
func (m *Manager) changed(tenant string) {
	m.policies.invalidate(tenant)
	m.hub.notify(tenantKey(tenant))
}

// effective computes a computer's effective policy and remembers its
// version for diffs.
func (m *Manager) effective(ctx context.Context, c api.Computer) (api.EffectivePolicy, api.ResolvedPolicy, error) {
	key := c.TenantID + "|" + c.PolicyID + "|" + overridesKey(c.Overrides)
	if e, ok := m.policies.get(key, c.TenantID); ok {
		return e.ep, e.rp, nil
	}
	gen := m.policies.generation(c.TenantID)
	chain, err := m.chainFor(ctx, c.TenantID, c.PolicyID)
	if err != nil {
		return api.EffectivePolicy{}, api.ResolvedPolicy{}, fmt.Errorf("computing policy of %s: %w", c.ID, err)
	}
	ep, rp, err := m.compute(ctx, c.TenantID, chain, c.Overrides)
	if err != nil {
		return ep, rp, err
	}
	m.policies.put(key, c.TenantID, cachedPolicy{ep: ep, rp: rp, at: time.Now()}, gen)
	return ep, rp, nil
}

// overridesKey is the overrides' part of a policy cache key: their JSON,
// spelled out without encoding/json for the nearly universal no overrides.
func overridesKey(o api.PolicyModules) string {
	switch {
	case o == nil:
		return "null"
	case len(o) == 0:
		return "{}"
	}
	b, _ := json.Marshal(o)
	return string(b)
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
	// Remember each version once per process: versions are content hashes,
	// so a write per heartbeat would only repeat the same row.
	key := tenant + "/" + ep.Version
	if _, seen := m.remembered.Load(key); !seen {
		if err := m.store.RememberPolicy(ctx, tenant, ep); err != nil {
			return ep, rp, err
		}
		m.remembered.Store(key, true)
	}
	return ep, rp, nil
}
