package spine

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/rulepack"
)

// TestRulePackReachesAgent imports signed packs on the manager and watches
// a real agent fetch, verify and report each new version; a tampered
// upload is refused and the agent stays on the version it has.
func TestRulePackReachesAgent(t *testing.T) {
	for _, d := range dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			m, admin := inProcManager(t, d, "127.0.0.1:0")
			ctx := context.Background()
			hc := managertest.TLSClient(m.CAPEM(), nil)
			hdr := http.Header{"Authorization": {"Bearer " + admin}}
			on := true
			var p api.Policy
			if err := managertest.Do(ctx, hc, "POST", m.URL()+"/api/v1/policies", hdr, api.PolicyRequest{Name: "packs",
				Modules: api.PolicyModules{genName: {Enabled: &on, RulePacks: []string{"base"}}}}, &p); err != nil {
				t.Fatal(err)
			}
			var tok api.EnrollmentToken
			if err := managertest.Do(ctx, hc, "POST", m.URL()+"/api/v1/tokens", hdr, api.TokenRequest{PolicyID: p.ID}, &tok); err != nil {
				t.Fatal(err)
			}
			key, err := rulepack.LoadOrCreateKey(filepath.Join(m.DataDir(), "rulepack.key"))
			if err != nil {
				t.Fatal(err)
			}
			upload := func(version string, tamper bool) error {
				b, err := rulepack.Build("base", version, "", time.Now(), []rulepack.File{{Entry: rulepack.Entry{Module: genName, Path: "gen/rules.txt"}, Data: []byte("rules " + version)}}, key)
				if err != nil {
					t.Fatal(err)
				}
				if tamper {
					b = bytes.Clone(b)
					b[len(b)/2] ^= 0x55
				}
				h := hdr.Clone()
				h.Set("Content-Type", "application/gzip")
				return managertest.Do(ctx, hc, "POST", m.URL()+"/api/v1/rulepacks", h, b, nil)
			}
			if err := upload("1", false); err != nil {
				t.Fatal(err)
			}
			inProcAgent(t, m.URL(), m.CAPEM(), tok.Token)
			reported := func(version string) {
				t.Helper()
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
					var cs api.Page[api.Computer]
					if err := managertest.Do(ctx, hc, "GET", m.URL()+"/api/v1/computers", hdr, nil, &cs); err != nil {
						t.Fatal(err)
					}
					if len(cs.Items) == 1 && len(cs.Items[0].RulePacks) == 1 && cs.Items[0].RulePacks[0].Version == version {
						return
					}
				}
				t.Fatalf("agent did not report rule pack base/%s", version)
			}
			reported("1")
			if err := upload("2", true); err == nil {
				t.Fatal("tampered pack accepted")
			}
			if err := upload("3", false); err != nil {
				t.Fatal(err)
			}
			reported("3")
		})
	}
}
