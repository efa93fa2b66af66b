package manager

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/rulepack"
)

func TestRulePackImportAndSchedule(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var p api.Policy
		e.must(e.admin, "POST", "/api/v1/policies", api.PolicyRequest{Name: "with-pack", Modules: api.PolicyModules{"loginspect": {Enabled: ptr(true), RulePacks: []string{"base"}}}}, &p)
		a := e.agent(e.token(e.admin, api.TokenRequest{PolicyID: p.ID}), "m1")
		ep0, _ := a.Policy(ctx)
		if len(ep0.RulePacks) != 0 {
			t.Fatalf("pack listed before import: %+v", ep0.RulePacks)
		}
		v1 := e.signedPack("base", "1")
		if code, eb := e.rawCall(e.admin, "POST", "/api/v1/rulepacks", "application/gzip", v1); code != 200 {
			t.Fatalf("import = %d %+v", code, eb)
		}
		ep1, _ := a.Policy(ctx)
		if len(ep1.RulePacks) != 1 || ep1.RulePacks[0].Version != "1" || ep1.Version == ep0.Version {
			t.Fatalf("after immediate import: %+v", ep1)
		}
		// The agent downloads it and verifies it with the keys it got at
		// enrolment.
		var archive []byte
		if err := managertest.Do(ctx, a.Client, "GET", e.m.URL()+api.PathAgentRulePack+"base/1", nil, nil, &archive); err != nil {
			t.Fatal(err)
		}
		pk, _ := rulepack.ParsePublicKey(a.Enroll.RulePackKeys[0])
		if _, err := rulepack.Open(bytes.NewReader(archive), []ed25519.PublicKey{pk}); err != nil {
			t.Fatalf("served pack does not verify: %v", err)
		}

		// Tampered: refused, audited, the old version stays.
		bad := e.signedPack("base", "2")
		bad[len(bad)/2] ^= 0xff
		if code, _ := e.rawCall(e.admin, "POST", "/api/v1/rulepacks", "application/gzip", bad); code != 400 {
			t.Fatalf("tampered pack = %d, want 400", code)
		}
		_, foreign, _ := ed25519.GenerateKey(nil)
		other, _ := rulepack.Build("base", "3", "", time.Now(), []rulepack.File{{Entry: rulepack.Entry{Module: "loginspect", Path: "x.yml"}, Data: []byte("x")}}, foreign)
		code, eb := e.rawCall(e.admin, "POST", "/api/v1/rulepacks", "application/gzip", other)
		if code != 400 {
			t.Fatalf("pack signed by an untrusted key = %d %+v, want 400", code, eb)
		}
		if !auditHas(e, e.admin, "rulepack.refused", "") {
			t.Fatal("refused pack not audited")
		}
		if ep, _ := a.Policy(ctx); ep.Version != ep1.Version {
			t.Fatal("a refused pack changed the policy")
		}

		// Daily schedule: a new version waits for 03:00 UTC.
		e.must(e.admin, "PUT", "/api/v1/rulepacks/base/schedule", api.RulePackSchedule{Schedule: "03:00"}, nil)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(e.signedPack("base", "4")) }))
		defer srv.Close()
		var rp api.RulePack
		e.must(e.admin, "POST", "/api/v1/rulepacks", api.RulePackImportURL{URL: srv.URL + "/base-4.tar.gz"}, &rp)
		if rp.Version != "4" || rp.Distributed != nil {
			t.Fatalf("imported from URL = %+v, want version 4 not yet distributed", rp)
		}
		if ep, _ := a.Policy(ctx); ep.RulePacks[0].Version != "1" {
			t.Fatalf("scheduled version went out early: %+v", ep.RulePacks)
		}
		e.m.runJobsOnce(ctx, time.Now().Add(25*time.Hour))
		ep4, _ := a.Policy(ctx)
		if ep4.RulePacks[0].Version != "4" || ep4.Version == ep1.Version {
			t.Fatalf("after the scheduled time: %+v", ep4.RulePacks)
		}
		var list api.Page[api.RulePack]
		e.must(e.admin, "GET", "/api/v1/rulepacks", nil, &list)
		if len(list.Items) != 2 {
			t.Fatalf("%d versions kept, want 2 (1 and 4)", len(list.Items))
		}
	})
}

func TestDue(t *testing.T) {
	imp := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		sched string
		now   time.Time
		want  bool
	}{
		{"immediate", imp, true},
		{"03:00", imp.Add(time.Hour), false},
		{"03:00", time.Date(2026, 1, 2, 2, 59, 0, 0, time.UTC), false},
		{"03:00", time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), true},
		{"12:00", time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), true},
		{"10:00", imp, false}, // imported exactly at 10:00: next is tomorrow
	} {
		if got := due(tc.sched, imp, tc.now); got != tc.want {
			t.Errorf("due(%s, %v) = %v, want %v", tc.sched, tc.now, got, tc.want)
		}
	}
}
