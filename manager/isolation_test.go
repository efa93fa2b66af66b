package manager

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/rulepack"
)

func (e *env) signedPack(name, version string, files ...rulepack.File) []byte {
	e.t.Helper()
	key, err := rulepack.LoadOrCreateKey(filepath.Join(e.m.cfg.DataDir, "rulepack.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	if len(files) == 0 {
		files = []rulepack.File{{Entry: rulepack.Entry{Module: "loginspect", Path: "sigma/ssh.yml"}, Data: []byte("title: ssh " + version + "\n")}}
	}
	b, err := rulepack.Build(name, version, "test pack", time.Now(), files, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// TestTenantIsolation walks every public endpoint with tenant B's key
// against tenant A's objects: B must get 404 (or, for lists, not see
// them), and A's objects must be unchanged afterwards.
func TestTenantIsolation(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		A := e.admin
		var pA api.Policy
		e.must(A, "POST", "/api/v1/policies", api.PolicyRequest{Name: "pa", Modules: api.PolicyModules{"integrity": {Enabled: ptr(true)}}}, &pA)
		var tokA api.EnrollmentToken
		e.must(A, "POST", "/api/v1/tokens", api.TokenRequest{PolicyID: pA.ID, MaxUses: 5}, &tokA)
		agentA := e.agent(tokA.Token, "ma")
		var cmdA api.Command
		e.must(A, "POST", "/api/v1/computers/"+agentA.ComputerID+"/commands", api.CommandRequest{Type: api.CommandScanNow}, &cmdA)
		if code, eb := e.rawCall(A, "POST", "/api/v1/rulepacks", "application/gzip", e.signedPack("packa", "1")); code != 200 {
			t.Fatalf("import = %d %+v", code, eb)
		}
		e.must(A, "PUT", "/api/v1/rulepacks/packa/schedule", api.RulePackSchedule{Schedule: "03:00"}, nil)
		var nA api.Notifier
		e.must(A, "POST", "/api/v1/notifiers", api.NotifierRequest{Name: "na", Type: "webhook", Config: json.RawMessage(`{"url":"http://127.0.0.1:1/"}`)}, &nA)
		var arA api.AlertRule
		e.must(A, "POST", "/api/v1/alert-rules", api.AlertRuleRequest{Name: "ara", MinSeverity: "high", NotifierIDs: []string{nA.ID}}, &arA)
		evA := managertest.Events(1, "antimalware", event.SeverityCritical)
		if _, err := agentA.Upload(ctx, evA); err != nil {
			t.Fatal(err)
		}
		var alerts api.Page[api.Alert]
		e.must(A, "GET", "/api/v1/alerts", nil, &alerts)
		if len(alerts.Items) != 1 {
			t.Fatalf("tenant A has %d alerts, want 1", len(alerts.Items))
		}
		alA := alerts.Items[0]
		var kA api.APIKey
		e.must(A, "POST", "/api/v1/apikeys", api.APIKeyRequest{Name: "second"}, &kA)

		_, B := e.tenant("b")
		tokB := e.token(B, api.TokenRequest{})
		agentB := e.agent(tokB, "mb")

		secretIDs := []string{pA.ID, tokA.ID, agentA.ComputerID, cmdA.ID, nA.ID, arA.ID, alA.ID, kA.ID, evA[0].ID, "packa"}
		ids := map[string]string{
			"/apikeys/": kA.ID, "/tokens/": tokA.ID, "/computers/": agentA.ComputerID, "/policies/": pA.ID,
			"/alert-rules/": arA.ID, "/alerts/": alA.ID, "/notifiers/": nA.ID,
		}
		bodies := map[string]any{
			"PATCH /api/v1/computers/{id}":          api.ComputerPatch{Group: ptr("stolen")},
			"POST /api/v1/computers/{id}/commands":  api.CommandRequest{Type: api.CommandScanNow},
			"PUT /api/v1/policies/{id}":             api.PolicyRequest{Name: "stolen"},
			"PUT /api/v1/alert-rules/{id}":          api.AlertRuleRequest{Name: "stolen"},
			"PUT /api/v1/notifiers/{id}":            api.NotifierRequest{Name: "stolen", Type: "webhook", Config: json.RawMessage(`{}`)},
			"PUT /api/v1/rulepacks/{name}/schedule": api.RulePackSchedule{Schedule: "immediate"},
			"POST /api/v1/apikeys":                  api.APIKeyRequest{Name: "x", TenantID: agentA.TenantID},
			"POST /api/v1/tokens":                   api.TokenRequest{PolicyID: pA.ID},
			"POST /api/v1/policies":                 api.PolicyRequest{Name: "child", ParentID: pA.ID},
			"POST /api/v1/alert-rules":              api.AlertRuleRequest{Name: "x", NotifierIDs: []string{nA.ID}},
			"POST /api/v1/notifiers":                api.NotifierRequest{Name: "nb", Type: "webhook", Config: json.RawMessage(`{"url":"http://127.0.0.1:1/"}`)},
			"POST /api/v1/rulepacks":                api.RulePackImportURL{URL: "ftp://nowhere"},
			"PATCH /api/v1/settings":                api.SettingsPatch{EventRetentionDays: ptr(1)},
			"POST /api/v1/tenants":                  api.TenantRequest{Name: "c"},
		}
		// Creating in one's own tenant is fine; referencing A's objects is not.
		wantCreate := map[string]int{
			"POST /api/v1/apikeys": 403, "POST /api/v1/tokens": 400, "POST /api/v1/policies": 400, "POST /api/v1/alert-rules": 400,
			"POST /api/v1/notifiers": 201, "POST /api/v1/rulepacks": 400, "PATCH /api/v1/settings": 200,
			"GET /api/v1/rulepacks/{name}/schedule": 200, "PUT /api/v1/rulepacks/{name}/schedule": 200,
			"GET /api/v1/tenants": 403, "POST /api/v1/tenants": 403,
		}
		covered := 0
		for _, rt := range e.m.routeTable() {
			if rt.auth != authKey && rt.auth != authAdmin {
				continue
			}
			covered++
			key := rt.method + " " + rt.path
			path := strings.ReplaceAll(rt.path, "{name}/{version}", "packa/1")
			path = strings.ReplaceAll(path, "{name}", "packa")
			for prefix, id := range ids {
				if i := strings.Index(path, prefix+"{id}"); i >= 0 {
					path = strings.Replace(path, prefix+"{id}", prefix+id, 1)
				}
			}
			var raw []byte
			code := e.call(B, rt.method, path, bodies[key], &raw)
			if code == 200 && rt.method == "POST" && bodies[key] != nil {
				code = 201 // call reports any 2xx as 200
			}
			want, special := wantCreate[key]
			switch {
			case special:
				if code != want && !(want == 201 && code == 200) {
					t.Errorf("%s as tenant B = %d, want %d", key, code, want)
				}
			case strings.Contains(rt.path, "{"):
				if code != 404 {
					t.Errorf("%s on tenant A's object as tenant B = %d, want 404", key, code)
				}
			default:
				if code != 200 {
					t.Errorf("%s as tenant B = %d, want 200", key, code)
				}
			}
			for _, s := range secretIDs {
				if s != "packa" && strings.Contains(string(raw), s) {
					t.Errorf("%s as tenant B leaks tenant A's %s", key, s)
				}
			}
			if key == "GET /api/v1/rulepacks/{name}/schedule" && strings.Contains(string(raw), "03:00") {
				t.Errorf("tenant B sees tenant A's schedule: %s", raw)
			}
		}
		if covered < 45 {
			t.Fatalf("only %d public routes walked", covered)
		}
		// A's objects are untouched.
		var c api.Computer
		e.must(A, "GET", "/api/v1/computers/"+agentA.ComputerID, nil, &c)
		if c.Group != "" || c.Deactivated {
			t.Fatalf("A's computer changed: %+v", c)
		}
		var p api.Policy
		e.must(A, "GET", "/api/v1/policies/"+pA.ID, nil, &p)
		if p.Name != "pa" {
			t.Fatalf("A's policy changed: %+v", p)
		}
		var sc api.RulePackSchedule
		e.must(A, "GET", "/api/v1/rulepacks/packa/schedule", nil, &sc)
		if sc.Schedule != "03:00" {
			t.Fatalf("A's schedule = %q", sc.Schedule)
		}
		var st api.Settings
		e.must(A, "GET", "/api/v1/settings", nil, &st)
		if st.EventRetentionDays == 1 {
			t.Fatal("B changed A's settings")
		}
		if _, err := agentA.Heartbeat(ctx, api.Heartbeat{}, 0); err != nil {
			t.Fatalf("A's agent after the walk: %v", err)
		}
		// Agent side: B's agent cannot fetch A's pack nor ack A's command,
		// and the computer an event is stored under comes from the
		// certificate, not from the body.
		if err := managertest.Do(ctx, agentB.Client, "GET", e.m.URL()+api.PathAgentRulePack+"packa/1", nil, nil, nil); statusOf(err) != 404 {
			t.Errorf("B's agent fetching A's pack = %v, want 404", err)
		}
		if err := managertest.Do(ctx, agentB.Client, "POST", e.m.URL()+api.PathAgentCommand+cmdA.ID+"/ack", nil, api.CommandAck{OK: true}, nil); statusOf(err) != 404 {
			t.Errorf("B's agent acking A's command = %v, want 404", err)
		}
		spoof := managertest.Events(1, "x", 2)
		spoof[0].ComputerID = agentA.ComputerID
		if _, err := agentB.Upload(ctx, spoof); err != nil {
			t.Fatal(err)
		}
		var evs api.Page[event.Event]
		e.must(A, "GET", "/api/v1/events", nil, &evs)
		for _, ev := range evs.Items {
			if ev.ID == spoof[0].ID {
				t.Fatal("B's agent injected an event into tenant A")
			}
		}
	})
}
