package manager

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
)

// rawCall posts a raw body and returns status and error body.
func (e *env) rawCall(key, method, path, ctype string, body []byte) (int, api.ErrorBody) {
	e.t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	err := managertest.Do(context.Background(), e.http, method, e.m.URL()+path, h, body, nil)
	if st, ok := err.(*managertest.Status); ok {
		return st.Code, st.Body
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return 200, api.ErrorBody{}
}

func TestBadInputNothingWritten(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
		for _, tc := range []struct {
			name, path, body string
			status           int
			field            string
		}{
			{"malformed", "/api/v1/policies", `{"name": "p",`, 400, ""},
			{"not json", "/api/v1/policies", `name=p`, 400, ""},
			{"empty", "/api/v1/policies", ``, 400, ""},
			{"unknown field", "/api/v1/policies", `{"name":"p","colour":"red"}`, 400, "colour"},
			{"wrong type", "/api/v1/policies", `{"name":"p","heartbeat_seconds":"fast"}`, 400, "heartbeat_seconds"},
			{"nested wrong type", "/api/v1/policies", `{"name":"p","modules":{"integrity":{"enabled":"yes"}}}`, 400, "modules.integrity.enabled"}, // the full path, map key included
			{"nested unknown field", "/api/v1/policies", `{"name":"p","modules":{"integrity":{"enabled":true,"Settings":{}}}}`, 400, "modules.integrity.Settings"},
			{"miscased field", "/api/v1/policies", `{"Name":"p"}`, 400, "Name"}, // encoding/json alone would take it for "name"
			{"element wrong type", "/api/v1/tokens", `{"tags":["web",7]}`, 400, "tags[1]"},
			{"alert rule element wrong type", "/api/v1/alert-rules", `{"name":"a","notifier_ids":["n1",{"id":"n2"}]}`, 400, "notifier_ids[1]"},
			{"two values", "/api/v1/policies", `{"name":"p"} {"name":"q"}`, 400, ""},
			{"missing name", "/api/v1/policies", `{}`, 400, "name"},
			{"bad module name", "/api/v1/policies", `{"name":"p","modules":{"Bad Name":{}}}`, 400, "modules.Bad Name"},
			{"oversized", "/api/v1/policies", big, 413, ""},
			{"bad parent", "/api/v1/policies", `{"name":"p","parent_id":"p_nope"}`, 400, "parent_id"},
			{"token bad ttl", "/api/v1/tokens", `{"ttl":"forever"}`, 400, "ttl"},
			{"token bad policy", "/api/v1/tokens", `{"policy_id":"p_nope"}`, 400, "policy_id"},
			{"token wrong type", "/api/v1/tokens", `{"max_uses":"3"}`, 400, "max_uses"},
			{"settings too small", "/api/v1/settings", `{"offline_after_missed":0}`, 400, "offline_after_missed"},
			{"alert rule bad severity", "/api/v1/alert-rules", `{"name":"a","min_severity":"scary"}`, 400, "min_severity"},
			{"notifier bad type", "/api/v1/notifiers", `{"name":"n","type":"pigeon","config":{}}`, 400, "type"},
			{"schedule", "/api/v1/rulepacks/base/schedule", `{"schedule":"25:00"}`, 400, "schedule"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				method := "POST"
				switch {
				case strings.HasSuffix(tc.path, "/settings"):
					method = "PATCH"
				case strings.HasSuffix(tc.path, "/schedule"):
					method = "PUT"
				}
				var before api.Page[api.AuditEntry]
				e.must(e.admin, "GET", "/api/v1/audit?limit=1000", nil, &before)
				code, eb := e.rawCall(e.admin, method, tc.path, "application/json", []byte(tc.body))
				if code != tc.status || eb.Error.Field != tc.field {
					t.Fatalf("%s %s = %d field %q (%s); want %d field %q", method, tc.path, code, eb.Error.Field, eb.Error.Message, tc.status, tc.field)
				}
				if eb.Error.Message == "" || eb.Error.Status != code {
					t.Fatalf("error body = %+v", eb)
				}
				var after api.Page[api.AuditEntry]
				e.must(e.admin, "GET", "/api/v1/audit?limit=1000", nil, &after)
				if len(after.Items) != len(before.Items) {
					t.Fatalf("a refused request was audited as a change: %+v", after.Items[0])
				}
			})
		}
		var ps api.Page[api.Policy]
		e.must(e.admin, "GET", "/api/v1/policies", nil, &ps)
		if len(ps.Items) != 1 {
			t.Fatalf("%d policies after bad requests, want only the default", len(ps.Items))
		}
		var toks api.Page[api.EnrollmentToken]
		e.must(e.admin, "GET", "/api/v1/tokens", nil, &toks)
		if len(toks.Items) != 0 {
			t.Fatalf("bad token requests created %d tokens", len(toks.Items))
		}
		// Agent side: a malformed batch stores nothing.
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		err := managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentEvents, nil, []byte(`{"events":[{"id":"x","time":"2026-01-01T00:00:00Z","kind":"k","severity":"high","bogus":1}]}`), nil)
		if st, ok := err.(*managertest.Status); !ok || st.Code != 400 || st.Body.Error.Field != "events[0].bogus" {
			t.Fatalf("unknown event field = %v", err)
		}
		err = managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentEvents, nil, []byte(`{"events":[{"id":"x","time":"2026-01-01T00:00:00Z","kind":"k","severity":"high"},{"id":"y","time":"2026-01-01T00:00:00Z","kind":"k","severity":"apocalyptic"}]}`), nil)
		if st, ok := err.(*managertest.Status); !ok || st.Code != 400 || st.Body.Error.Field != "events[1].severity" {
			t.Fatalf("bad severity in the second event = %v", err)
		}
		err = managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentEvents, nil, []byte(`{"events":[{"id":"x","time":"2026-01-01T00:00:00Z","kind":"k","severity":"apocalyptic"}]}`), nil)
		if statusOf(err) != 400 {
			t.Fatalf("bad severity = %v", err)
		}
		if n, _ := e.m.Store().CountEvents(ctx, a.TenantID); n != 0 {
			t.Fatalf("%d events stored from refused batches", n)
		}
		// Missing fields in one event reject that event only, by index.
		evs := managertest.Events(3, "logs", 2)
		evs[1].Kind = ""
		res, err := a.Upload(ctx, evs)
		if err != nil || res.Accepted != 2 || res.Rejected != 1 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0], "events[1]") {
			t.Fatalf("partly bad batch = %+v, %v", res, err)
		}
	})
}

func TestEnrollRefusals(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		host := api.HostInfo{Hostname: "h", MachineID: "m"}
		enroll := func(token string, key any) error {
			csr, err := managertest.CSR(key, "")
			if err != nil {
				t.Fatal(err)
			}
			return managertest.Do(ctx, e.http, "POST", e.m.URL()+api.PathEnroll, nil, api.EnrollRequest{Token: token, CSR: csr, Host: host}, nil)
		}
		good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

		once := e.token(e.admin, api.TokenRequest{MaxUses: 1})
		// A wrong key type is refused and does not use up the token.
		for name, k := range map[string]any{"rsa": rsaKey, "p384": p384} {
			err := enroll(once, k)
			if st, ok := err.(*managertest.Status); !ok || st.Code != 400 || st.Body.Error.Field != "csr" {
				t.Fatalf("%s CSR = %v, want 400 on field csr", name, err)
			}
		}
		if err := enroll(once, good); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if err := enroll(once, good); statusOf(err) != 401 {
			t.Fatalf("reused token = %v, want 401", err)
		}
		var exp api.EnrollmentToken
		e.must(e.admin, "POST", "/api/v1/tokens", api.TokenRequest{TTL: "1ms"}, &exp)
		time.Sleep(5 * time.Millisecond)
		if err := enroll(exp.Token, good); statusOf(err) != 401 {
			t.Fatalf("expired token = %v, want 401", err)
		}
		var rev api.EnrollmentToken
		e.must(e.admin, "POST", "/api/v1/tokens", api.TokenRequest{}, &rev)
		e.must(e.admin, "DELETE", "/api/v1/tokens/"+rev.ID, nil, nil)
		if err := enroll(rev.Token, good); statusOf(err) != 401 {
			t.Fatalf("revoked token = %v, want 401", err)
		}
		if err := enroll("mt_made_up", good); statusOf(err) != 401 {
			t.Fatalf("unknown token = %v, want 401", err)
		}
		// Another tenant's token enrols into that tenant, never ours, and
		// our key cannot see or revoke it.
		tb, kb := e.tenant("b")
		var tokB api.EnrollmentToken
		e.must(kb, "POST", "/api/v1/tokens", api.TokenRequest{}, &tokB)
		if code := e.call(e.admin, "DELETE", "/api/v1/tokens/"+tokB.ID, nil, nil); code != 404 {
			t.Fatalf("revoking another tenant's token = %d, want 404", code)
		}
		b := e.agent(tokB.Token, "mb")
		if b.TenantID != tb {
			t.Fatalf("agent enrolled into %s, want tenant b %s", b.TenantID, tb)
		}
		var cs api.Page[api.Computer]
		e.must(e.admin, "GET", "/api/v1/computers", nil, &cs)
		for _, c := range cs.Items {
			if c.ID == b.ComputerID {
				t.Fatal("tenant b's computer listed for the default tenant")
			}
		}
		// Every refusal is audited, with the reason, in the token's tenant.
		var log api.Page[api.AuditEntry]
		e.must(e.admin, "GET", "/api/v1/audit?limit=1000", nil, &log)
		reasons := map[string]bool{}
		for _, a := range log.Items {
			if a.Action == "enroll.refused" {
				reasons[string(a.Detail)] = true
			}
		}
		want := []string{"token used up", "token expired", "token revoked", "ECDSA key on P-384", "*rsa.PublicKey"}
		var sys api.Page[api.AuditEntry]
		e.must(e.admin, "GET", "/api/v1/audit?system=1", nil, &sys)
		if len(sys.Items) == 0 || !strings.Contains(string(sys.Items[0].Detail), "token unknown") {
			t.Errorf("refusal of an unknown token not in the system audit log: %+v", sys.Items)
		}
		for _, w := range want {
			found := false
			for r := range reasons {
				if strings.Contains(r, w) {
					found = true
				}
			}
			if !found {
				t.Errorf("no audited refusal mentioning %q in %v", w, reasons)
			}
		}
	})
}
