package policy

import (
	"encoding/json"
	"testing"

	"github.com/mamori-sec/mamori/api"
)

func b(v bool) *bool { return &v }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func tree() Input {
	root := api.Policy{ID: "p_root", Name: "root", HeartbeatSeconds: 60, Modules: api.PolicyModules{
		"antimalware": {Enabled: b(true), Settings: map[string]json.RawMessage{"on_access": raw("true"), "max_file_mb": raw("100")}, RulePacks: []string{"clamav"}},
		"integrity":   {Enabled: b(true), Settings: map[string]json.RawMessage{"paths": raw(`["/etc"]`)}},
	}}
	web := api.Policy{ID: "p_web", ParentID: "p_root", Name: "web", Modules: api.PolicyModules{
		"antimalware": {Settings: map[string]json.RawMessage{"max_file_mb": raw("20")}},
		"integrity":   {Enabled: b(false)},
	}}
	return Input{Chain: []api.Policy{root, web}, DefaultHeartbeat: 30,
		Packs: map[string]api.RulePackRef{"clamav": {Name: "clamav", Version: "3", SHA256: "x"}}}
}

func TestInheritance(t *testing.T) {
	ep, rp := Compute(tree())
	am := ep.Modules["antimalware"]
	if !am.Enabled || string(am.Settings) != `{"max_file_mb":20,"on_access":true}` {
		t.Fatalf("antimalware = %+v %s", am, am.Settings)
	}
	if ep.Modules["integrity"].Enabled {
		t.Fatal("child disabled integrity, still enabled")
	}
	if ep.HeartbeatSeconds != 60 || ep.PolicyID != "p_web" {
		t.Fatalf("heartbeat %d policy %s", ep.HeartbeatSeconds, ep.PolicyID)
	}
	if len(ep.RulePacks) != 1 || ep.RulePacks[0].Version != "3" {
		t.Fatalf("rulepacks = %+v", ep.RulePacks)
	}
	ra := rp.Modules["antimalware"]
	for _, tc := range []struct {
		name string
		got  api.ResolvedValue
		src  string
		inh  bool
	}{
		{"enabled", ra.Enabled, "p_root", true},
		{"max_file_mb", ra.Settings["max_file_mb"], "p_web", false},
		{"on_access", ra.Settings["on_access"], "p_root", true},
		{"rulepacks", ra.RulePacks, "p_root", true},
	} {
		if tc.got.Source != tc.src || tc.got.Inherited != tc.inh {
			t.Errorf("%s: source %q inherited %v, want %q %v", tc.name, tc.got.Source, tc.got.Inherited, tc.src, tc.inh)
		}
	}
}

func TestOverridesAndVersion(t *testing.T) {
	in := tree()
	base, _ := Compute(in)
	again, _ := Compute(tree())
	if base.Version != again.Version {
		t.Fatal("same input, different versions")
	}
	in.Overrides = api.PolicyModules{"antimalware": {Settings: map[string]json.RawMessage{"max_file_mb": raw("5")}}}
	over, rp := Compute(in)
	if over.Version == base.Version {
		t.Fatal("override did not change the version")
	}
	if rp.Modules["antimalware"].Settings["max_file_mb"].Source != SourceComputer {
		t.Fatal("override source not shown")
	}
	d := Diff(base, over)
	if len(d) != 1 || d[0].Path != "modules.antimalware.settings.max_file_mb" || string(d[0].Old) != "20" || string(d[0].New) != "5" {
		t.Fatalf("diff = %+v", d)
	}
	in.Packs["clamav"] = api.RulePackRef{Name: "clamav", Version: "4", SHA256: "y"}
	newer, _ := Compute(in)
	if newer.Version == over.Version {
		t.Fatal("a newly distributed pack version did not change the policy version")
	}
}

func TestUndistributedPackLeftOut(t *testing.T) {
	in := tree()
	in.Packs = nil
	ep, _ := Compute(in)
	if len(ep.RulePacks) != 0 || len(ep.Modules["antimalware"].RulePacks) != 0 {
		t.Fatalf("pack without a distributed version is listed: %+v", ep)
	}
}
