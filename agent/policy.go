package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

const policyFile = "policy.json"

func loadCachedPolicy(dir string) (*api.EffectivePolicy, error) {
	b, err := os.ReadFile(filepath.Join(dir, policyFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading cached policy: %w", err)
	}
	var p api.EffectivePolicy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, policyFile), err)
	}
	return &p, nil
}

// syncPolicy fetches the effective policy when its version differs from
// the one applied (or always, when force) and applies it.
func (a *Agent) syncPolicy(ctx context.Context, force bool) error {
	a.mu.Lock()
	cl := a.cl
	etag := ""
	if a.policy != nil && !force {
		etag = a.policy.Version
	}
	a.mu.Unlock()
	p, err := cl.Policy(ctx, etag)
	if errors.Is(err, client.ErrNotModified) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetching policy: %w", err)
	}
	return a.applyPolicy(ctx, p, force)
}

// packsMissing reports whether the applied policy names a pack version that
// is neither active nor known bad: a download that failed (manager busy,
// network) or a cache that was lost, to be retried on the next heartbeat.
func (a *Agent) packsMissing() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.policy == nil {
		return false
	}
	for _, ref := range a.policy.RulePacks {
		if cur, ok := a.packs[ref.Name]; ok && cur.Ref.Version == ref.Version {
			continue
		}
		if _, bad := a.refused[ref.Name+"/"+ref.Version]; !bad {
			return true
		}
	}
	return false
}

// applyPolicy installs a new effective policy: download and verify the
// rule packs it names (a pack that fails keeps its previous version), then
// reconfigure every module, then cache policy and packs on disk so a
// restart resumes with them even offline.
//
// A pack version that failed verification is not fetched again (it would be
// refused again, and reported again, every heartbeat) unless retryRefused:
// the operator's "update now".
func (a *Agent) applyPolicy(ctx context.Context, p *api.EffectivePolicy, retryRefused bool) error {
	var problems []string
	a.mu.Lock()
	cl, keys := a.cl, a.keys
	active := make(map[string]activePack, len(a.packs))
	for k, v := range a.packs {
		active[k] = v
	}
	a.mu.Unlock()
	wanted := map[string]bool{}
	for _, ref := range p.RulePacks {
		wanted[ref.Name] = true
		if cur, ok := active[ref.Name]; ok && cur.Ref.Version == ref.Version && (ref.SHA256 == "" || strings.EqualFold(cur.Ref.SHA256, ref.SHA256)) {
			continue
		}
		key := ref.Name + "/" + ref.Version
		a.mu.Lock()
		prevErr, bad := a.refused[key]
		a.mu.Unlock()
		if bad && !retryRefused {
			problems = append(problems, prevErr.Error())
			continue
		}
		archive, err := cl.RulePack(ctx, ref.Name, ref.Version)
		if err != nil {
			// Transient: keep what is active, retry on the next heartbeat.
			problems = append(problems, fmt.Sprintf("downloading rule pack %s: %v", key, err))
			continue
		}
		ap, err := a.verifyPack(ref, archive, keys)
		if err != nil {
			a.mu.Lock()
			a.refused[key] = err
			a.mu.Unlock()
			prev := "none"
			if cur, ok := active[ref.Name]; ok {
				prev = cur.Ref.Version
			}
			problems = append(problems, err.Error())
			a.log.Warn("rule pack refused; previous version stays active", "pack", ref.Name, "version", ref.Version, "active", prev, "err", err)
			a.report(event.KindAgentRulePack, event.SeverityHigh,
				fmt.Sprintf("rule pack %s version %s refused, version %s stays active: %v", ref.Name, ref.Version, prev, err),
				map[string]string{"pack": ref.Name, "version": ref.Version, "active_version": prev, "result": "refused"})
			continue
		}
		active[ref.Name] = ap
		a.report(event.KindAgentRulePack, event.SeverityInfo,
			fmt.Sprintf("rule pack %s version %s verified and applied", ref.Name, ref.Version),
			map[string]string{"pack": ref.Name, "version": ref.Version, "result": "applied"})
	}
	for name := range active {
		if !wanted[name] {
			delete(active, name)
		}
	}
	a.mu.Lock()
	a.packs = active
	a.policy = p
	if p.HeartbeatSeconds > 0 {
		a.heartbeat = heartbeatInterval(p.HeartbeatSeconds)
	}
	a.mu.Unlock()
	if err := a.ob.SetLimits(p.Outbox.MaxBytes, p.Outbox.Overflow); err != nil {
		problems = append(problems, err.Error())
	}
	a.throttle.Set(p.Budget.CPUPercent, p.Budget.IdleIO)
	problems = append(problems, a.applyModules(ctx, p)...)

	if err := saveActivePacks(a.packsDir(), active); err != nil {
		problems = append(problems, err.Error())
	}
	if b, err := json.MarshalIndent(p, "", "  "); err == nil {
		if err := atomicfile.Write(filepath.Join(a.cfg.DataDir, policyFile), b, 0o600); err != nil {
			problems = append(problems, err.Error())
		}
	}
	removeStalePacks(a.packsDir(), active)
	a.mu.Lock()
	a.policyErr = strings.Join(problems, "; ")
	a.mu.Unlock()
	a.writeStatus()
	if len(problems) > 0 {
		return fmt.Errorf("applying policy %s: %s", p.Version, strings.Join(problems, "; "))
	}
	a.log.Info("policy applied", "version", p.Version, "packs", len(active))
	return nil
}

func (a *Agent) verifyPack(ref api.RulePackRef, archive []byte, keys []ed25519.PublicKey) (activePack, error) {
	if len(keys) == 0 {
		return activePack{}, fmt.Errorf("rule pack %s/%s: no trusted rule-pack keys from enrolment", ref.Name, ref.Version)
	}
	return installPack(a.packsDir(), ref, archive, keys)
}

// applyModules hands each module its part of the policy. A module the
// policy does not mention is disabled.
func (a *Agent) applyModules(ctx context.Context, p *api.EffectivePolicy) []string {
	a.mu.Lock()
	active := a.packs
	a.mu.Unlock()
	var problems []string
	for _, name := range a.names {
		mp, ok := p.Modules[name]
		spec := ModuleSpec{
			Enabled:       ok && mp.Enabled,
			Settings:      mp.Settings,
			RuleFiles:     ruleFiles(active, mp.RulePacks, name),
			Budget:        Budget{CPUPercent: p.Budget.CPUPercent, IdleIO: p.Budget.IdleIO},
			PolicyVersion: p.Version,
		}
		if err := a.runners[name].apply(ctx, spec); err != nil {
			problems = append(problems, err.Error())
			a.report(event.KindAgentPolicy, event.SeverityMedium,
				fmt.Sprintf("policy %s: module %s kept its previous configuration: %v", p.Version, name, err),
				map[string]string{"module_name": name, "policy_version": p.Version})
		}
	}
	return problems
}
