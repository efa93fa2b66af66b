// Package policy computes a computer's effective policy from the policy
// tree (root first, each child overriding its parent per setting and per
// module), the computer's own overrides and the rule-pack versions being
// distributed; versions it by content hash; and diffs two versions.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	"github.com/mamori-sec/mamori/api"
)

// SourceComputer and SourceDefault name origins that are not a policy.
const (
	SourceComputer = "computer"
	SourceDefault  = "default"
)

// Input is everything an effective policy depends on.
type Input struct {
	Chain     []api.Policy      // root first; may be empty (no policy assigned)
	Overrides api.PolicyModules // the computer's own, applied last
	// Packs maps pack name → the version being distributed.
	Packs            map[string]api.RulePackRef
	DefaultHeartbeat int
}

type layer struct {
	source  string
	modules api.PolicyModules
}

// Compute returns the effective policy and, for every value, where it came
// from.
func Compute(in Input) (api.EffectivePolicy, api.ResolvedPolicy) {
	ep := api.EffectivePolicy{HeartbeatSeconds: in.DefaultHeartbeat, Modules: map[string]api.ModulePolicy{}}
	rp := api.ResolvedPolicy{Modules: map[string]api.ResolvedModule{}, Chain: []string{}}
	var layers []layer
	for _, p := range in.Chain {
		rp.Chain = append(rp.Chain, p.ID)
		ep.PolicyID, ep.PolicyName = p.ID, p.Name
		if p.HeartbeatSeconds > 0 {
			ep.HeartbeatSeconds = p.HeartbeatSeconds
		}
		if p.Budget != nil {
			ep.Budget = *p.Budget
		}
		if p.Outbox != nil {
			ep.Outbox = *p.Outbox
		}
		layers = append(layers, layer{p.ID, p.Modules})
	}
	rp.PolicyID = ep.PolicyID
	if len(in.Overrides) > 0 {
		layers = append(layers, layer{SourceComputer, in.Overrides})
	}
	last := ""
	if len(layers) > 0 {
		last = layers[len(layers)-1].source
	}
	names := map[string]bool{}
	for _, l := range layers {
		for n := range l.modules {
			names[n] = true
		}
	}
	used := map[string]bool{}
	for name := range names {
		rm := api.ResolvedModule{
			Enabled:   api.ResolvedValue{Value: json.RawMessage("false"), Source: SourceDefault, Inherited: true},
			Settings:  map[string]api.ResolvedValue{},
			RulePacks: api.ResolvedValue{Value: json.RawMessage("[]"), Source: SourceDefault, Inherited: true},
		}
		enabled := false
		settings := map[string]json.RawMessage{}
		var packs []string
		for _, l := range layers {
			m, ok := l.modules[name]
			if !ok {
				continue
			}
			inh := l.source != last
			if m.Enabled != nil {
				enabled = *m.Enabled
				rm.Enabled = api.ResolvedValue{Value: mustJSON(enabled), Source: l.source, Inherited: inh}
			}
			for k, v := range m.Settings {
				settings[k] = v
				rm.Settings[k] = api.ResolvedValue{Value: v, Source: l.source, Inherited: inh}
			}
			if m.RulePacks != nil {
				packs = m.RulePacks
				rm.RulePacks = api.ResolvedValue{Value: mustJSON(packs), Source: l.source, Inherited: inh}
			}
		}
		rp.Modules[name] = rm
		mp := api.ModulePolicy{Enabled: enabled}
		if len(settings) > 0 {
			mp.Settings = mustJSON(settings)
		}
		for _, p := range packs {
			if _, ok := in.Packs[p]; ok {
				mp.RulePacks = append(mp.RulePacks, p)
				if enabled {
					used[p] = true
				}
			}
		}
		sort.Strings(mp.RulePacks)
		ep.Modules[name] = mp
	}
	for p := range used {
		ep.RulePacks = append(ep.RulePacks, in.Packs[p])
	}
	sort.Slice(ep.RulePacks, func(i, j int) bool { return ep.RulePacks[i].Name < ep.RulePacks[j].Name })
	ep.Version = Version(ep)
	return ep, rp
}

// Version is the content hash of a policy (its Version field excluded):
// the same content always gives the same version, on every manager node.
func Version(ep api.EffectivePolicy) string {
	ep.Version = ""
	h := sha256.Sum256(mustJSON(ep))
	return hex.EncodeToString(h[:12])
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only JSON-native values reach here
	}
	return b
}

// Diff lists the JSON paths whose values differ between two policies.
func Diff(from, to api.EffectivePolicy) []api.DiffChange {
	a, b := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	from.Version, to.Version = "", ""
	flatten("", mustJSON(from), a)
	flatten("", mustJSON(to), b)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	out := []api.DiffChange{}
	for k := range keys {
		if string(a[k]) != string(b[k]) {
			out = append(out, api.DiffChange{Path: k, Old: a[k], New: b[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// flatten maps every leaf (and every array, compared whole) to its path.
func flatten(prefix string, raw json.RawMessage, out map[string]json.RawMessage) {
	var obj map[string]json.RawMessage
	if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &obj) == nil {
		for k, v := range obj {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, v, out)
		}
		return
	}
	out[prefix] = raw
}
