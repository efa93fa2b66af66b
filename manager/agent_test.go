package manager

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/store"
)

func ptr[T any](v T) *T { return &v }

func TestEnrollHeartbeatPolicyChange(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var parent api.Policy
		e.must(e.admin, "POST", "/api/v1/policies", api.PolicyRequest{Name: "base", HeartbeatSeconds: 30, Modules: api.PolicyModules{
			"integrity": {Enabled: ptr(true), Settings: map[string]json.RawMessage{"paths": json.RawMessage(`["/etc"]`)}}}}, &parent)
		var web api.Policy
		e.must(e.admin, "POST", "/api/v1/policies", api.PolicyRequest{Name: "web", ParentID: parent.ID}, &web)
		a := e.agent(e.token(e.admin, api.TokenRequest{PolicyID: web.ID, Group: "web", Tags: []string{"prod"}}), "m1")
		if a.Enroll.HeartbeatSeconds != 30 || len(a.Enroll.RulePackKeys) != 1 || a.Enroll.RulePackKeys[0] != e.m.RulePackPublicKey() {
			t.Fatalf("enrol response = %+v", a.Enroll)
		}
		ep, err := a.Policy(ctx)
		if err != nil || !ep.Modules["integrity"].Enabled || ep.PolicyID != web.ID {
			t.Fatalf("policy = %+v, %v", ep, err)
		}
		// If-None-Match with the current version: 304.
		req, _ := http.NewRequest("GET", e.m.URL()+api.PathAgentPolicy, nil)
		req.Header.Set("If-None-Match", `"`+ep.Version+`"`)
		resp, err := a.Client.Do(req)
		if err != nil || resp.StatusCode != http.StatusNotModified {
			t.Fatalf("conditional GET = %v, %v; want 304", resp.Status, err)
		}
		resp.Body.Close()

		hb, err := a.Heartbeat(ctx, api.Heartbeat{PolicyVersion: ep.Version, Modules: []api.ModuleState{{Name: "integrity", State: "running"}}}, 0)
		if err != nil || hb.PolicyVersion != ep.Version {
			t.Fatalf("heartbeat = %+v, %v", hb, err)
		}
		// A long-polling heartbeat returns as soon as the policy changes.
		type res struct {
			hb  api.HeartbeatResponse
			err error
			d   time.Duration
		}
		got := make(chan res, 1)
		go func() {
			start := time.Now()
			hb, err := a.Heartbeat(ctx, api.Heartbeat{PolicyVersion: ep.Version}, 8*time.Second)
			got <- res{hb, err, time.Since(start)}
		}()
		time.Sleep(300 * time.Millisecond)
		e.must(e.admin, "PUT", "/api/v1/policies/"+web.ID, api.PolicyRequest{Name: "web", ParentID: parent.ID, Modules: api.PolicyModules{
			"integrity": {Settings: map[string]json.RawMessage{"paths": json.RawMessage(`["/etc","/usr/bin"]`)}}}}, nil)
		r := <-got
		if r.err != nil || r.hb.PolicyVersion == ep.Version || r.d > 5*time.Second {
			t.Fatalf("long-poll = %+v after %v, %v; want a new version at once", r.hb, r.d, r.err)
		}
		var diff api.PolicyDiff
		e.must(e.admin, "GET", "/api/v1/computers/"+a.ComputerID+"/effective-policy/diff", nil, &diff)
		if len(diff.Changes) != 1 || diff.Changes[0].Path != "modules.integrity.settings.paths" {
			t.Fatalf("diff against applied = %+v", diff)
		}
		var rp api.ResolvedPolicy
		e.must(e.admin, "GET", "/api/v1/computers/"+a.ComputerID+"/effective-policy/resolved", nil, &rp)
		if v := rp.Modules["integrity"].Enabled; v.Source != parent.ID || !v.Inherited {
			t.Fatalf("enabled resolved = %+v, want inherited from %s", v, parent.ID)
		}
		var c api.Computer
		e.must(e.admin, "GET", "/api/v1/computers/"+a.ComputerID, nil, &c)
		if c.State != api.StateOnline || c.Group != "web" || c.AppliedPolicyVersion != ep.Version || c.Host.OS != "debian" {
			t.Fatalf("computer = %+v", c)
		}
	})
}

func TestCommandReachesLongPoll(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		ep, _ := a.Policy(ctx)
		done := make(chan api.HeartbeatResponse, 1)
		go func() {
			hb, _ := a.Heartbeat(ctx, api.Heartbeat{PolicyVersion: ep.Version}, 8*time.Second)
			done <- hb
		}()
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		var cmd api.Command
		e.must(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/commands", api.CommandRequest{Type: api.CommandScanNow, Args: map[string]string{"module": "antimalware"}}, &cmd)
		hb := <-done
		if len(hb.Commands) != 1 || hb.Commands[0].ID != cmd.ID || time.Since(start) > 3*time.Second {
			t.Fatalf("heartbeat commands = %+v after %v", hb.Commands, time.Since(start))
		}
		if err := managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentCommand+cmd.ID+"/ack", nil, api.CommandAck{OK: true}, nil); err != nil {
			t.Fatal(err)
		}
		var list api.Page[api.CommandStatus]
		e.must(e.admin, "GET", "/api/v1/computers/"+a.ComputerID+"/commands", nil, &list)
		if len(list.Items) != 1 || list.Items[0].Acked == nil || !list.Items[0].OK {
			t.Fatalf("commands = %+v", list.Items)
		}
		var eb api.ErrorBody
		if code := e.call(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/commands", api.CommandRequest{Type: "format_disk"}, &eb); code != 400 || eb.Error.Field != "type" {
			t.Fatalf("unknown command = %d %+v", code, eb)
		}
	})
}

func TestDeactivateAndRemove(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		if _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); err != nil {
			t.Fatal(err)
		}
		e.must(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/deactivate", nil, nil)
		if _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); statusOf(err) != 403 {
			t.Fatalf("deactivated heartbeat = %v, want 403", err)
		}
		if _, err := a.Upload(ctx, managertest.Events(1, "x", 2)); statusOf(err) != 403 {
			t.Fatalf("deactivated upload = %v, want 403", err)
		}
		e.must(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/activate", nil, nil)
		if _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); err != nil {
			t.Fatalf("reactivated: %v", err)
		}
		e.must(e.admin, "DELETE", "/api/v1/computers/"+a.ComputerID, nil, nil)
		if _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); statusOf(err) != 401 {
			t.Fatalf("removed computer heartbeat = %v, want 401", err)
		}
		// No client certificate at all.
		err := managertest.Do(ctx, e.http, "POST", e.m.URL()+api.PathHeartbeat, nil, api.Heartbeat{}, nil)
		if statusOf(err) != 401 {
			t.Fatalf("heartbeat without certificate = %v, want 401", err)
		}
	})
}

func TestCloneDetected(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "machine-a")
		clone := *a
		clone.Host.MachineID = "machine-b" // same certificate, another machine
		_, err := clone.Heartbeat(ctx, api.Heartbeat{Host: clone.Host}, 0)
		st, ok := err.(*managertest.Status)
		if !ok || st.Code != 409 || !strings.Contains(st.Body.Error.Message, "enrol again") {
			t.Fatalf("clone heartbeat = %v, want 409 telling it to enrol again", err)
		}
		if _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); err != nil {
			t.Fatalf("original after clone attempt: %v", err)
		}
		var c api.Computer
		e.must(e.admin, "GET", "/api/v1/computers/"+a.ComputerID, nil, &c)
		if c.Host.MachineID != "machine-a" {
			t.Fatalf("original's machine id = %q", c.Host.MachineID)
		}
		// The clone enrols as a computer of its own.
		b := e.agent(e.token(e.admin, api.TokenRequest{}), "machine-b")
		if b.ComputerID == a.ComputerID {
			t.Fatal("clone got the original's ID")
		}
		if !auditHas(e, e.admin, "computer.clone_detected", a.ComputerID) {
			t.Fatal("clone not audited")
		}
	})
}

func auditHas(e *env, key, action, object string) bool {
	var log api.Page[api.AuditEntry]
	e.must(key, "GET", "/api/v1/audit?limit=1000", nil, &log)
	for _, a := range log.Items {
		if a.Action == action && (object == "" || a.ObjectID == object) {
			return true
		}
	}
	return false
}

func TestRenewCertificate(t *testing.T) {
	for _, d := range []string{store.SQLite, store.Postgres} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			// 1-minute certificates (+5 min back-dating) are under a third of
			// their life at once: the manager asks for renewal.
			e := newEnv(t, d, func(c *Config) { c.CertValidity = time.Minute })
			ctx := context.Background()
			a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
			hb, err := a.Heartbeat(ctx, api.Heartbeat{}, 0)
			if err != nil || !hb.RenewCertificate {
				t.Fatalf("heartbeat = %+v, %v; want renew_certificate", hb, err)
			}
			wrongCN, _ := managertest.CSR(a.Key, "c_someoneelse")
			err = managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathRenew, nil, api.RenewRequest{CSR: wrongCN}, nil)
			if statusOf(err) != 400 {
				t.Fatalf("renew with another computer's name = %v, want 400", err)
			}
			csr, _ := managertest.CSR(a.Key, a.ComputerID)
			var rr api.RenewResponse
			if err := managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathRenew, nil, api.RenewRequest{CSR: csr}, &rr); err != nil {
				t.Fatal(err)
			}
			old := *a
			if err := a.UseCertificate([]byte(rr.Certificate)); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); err != nil {
				t.Fatalf("heartbeat with renewed certificate: %v", err)
			}
			if _, err := old.Heartbeat(ctx, api.Heartbeat{}, 0); statusOf(err) != 401 {
				t.Fatalf("heartbeat with replaced certificate = %v, want 401", err)
			}
		})
	}
}

func TestClockSkew(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		hb, err := a.Heartbeat(ctx, api.Heartbeat{AgentTime: time.Now().Add(-time.Hour)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if hb.ClockSkewSeconds > -3590 || hb.ClockSkewSeconds < -3610 {
			t.Fatalf("skew = %v, want about -3600", hb.ClockSkewSeconds)
		}
		var c api.Computer
		e.must(e.admin, "GET", "/api/v1/computers/"+a.ComputerID, nil, &c)
		if c.ClockSkewSeconds > -3590 {
			t.Fatalf("computer skew = %v", c.ClockSkewSeconds)
		}
		// Events stamped by a skewed clock are stored with their own time
		// (the agent's view); the query by time still finds them.
		evs := managertest.Events(1, "logs", 3)
		evs[0].Time = time.Now().Add(-time.Hour)
		if _, err := a.Upload(ctx, evs); err != nil {
			t.Fatal(err)
		}
		var page api.Page[json.RawMessage]
		e.must(e.admin, "GET", "/api/v1/events?from="+time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339), nil, &page)
		if len(page.Items) != 1 {
			t.Fatalf("found %d skewed events", len(page.Items))
		}
	})
}
