package spine

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/store"
)

var dialects = []string{store.SQLite, store.Postgres}

func long() bool { return os.Getenv("MAMORI_LONG") == "1" }

// TestNetnsAgentEnrolsAndFollowsPolicy: an agent in a second network
// namespace enrols with a token over the veth link and applies a policy
// change well within one heartbeat interval (long-poll).
func TestNetnsAgentEnrolsAndFollowsPolicy(t *testing.T) {
	for _, d := range dialects {
		t.Run(d, func(t *testing.T) {
			ns, hostIP := netns(t)
			m, admin := inProcManager(t, d, hostIP+":0", hostIP)
			ctx := context.Background()
			hc := managertest.TLSClient(m.CAPEM(), nil)
			h := map[string][]string{"Authorization": {"Bearer " + admin}}
			on := true
			var p api.Policy
			if err := managertest.Do(ctx, hc, "POST", m.URL()+"/api/v1/policies", h, api.PolicyRequest{Name: "netns", HeartbeatSeconds: 30,
				Modules: api.PolicyModules{genName: {Enabled: &on}}}, &p); err != nil {
				t.Fatal(err)
			}
			var tok api.EnrollmentToken
			if err := managertest.Do(ctx, hc, "POST", m.URL()+"/api/v1/tokens", h, api.TokenRequest{PolicyID: p.ID}, &tok); err != nil {
				t.Fatal(err)
			}
			newAgentProc(t, m.URL(), m.CAPEM(), tok.Token, ns)
			comp := func() api.Computer {
				var cs api.Page[api.Computer]
				if err := managertest.Do(ctx, hc, "GET", m.URL()+"/api/v1/computers", h, nil, &cs); err != nil {
					t.Fatal(err)
				}
				if len(cs.Items) == 0 {
					return api.Computer{}
				}
				return cs.Items[0]
			}
			var c api.Computer
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if c = comp(); c.AppliedPolicyVersion != "" {
					break
				}
			}
			if c.AppliedPolicyVersion == "" {
				t.Fatal("agent in the namespace did not enrol and apply its policy within 60s")
			}
			if !containsIP(c.Host.IPs, hostIP[:len(hostIP)-1]+"2") && len(c.Host.IPs) > 0 {
				t.Logf("agent reports IPs %v (namespace address %s2 expected among them)", c.Host.IPs, hostIP[:len(hostIP)-1])
			}
			before := c.AppliedPolicyVersion
			start := time.Now()
			if err := managertest.Do(ctx, hc, "PUT", m.URL()+"/api/v1/policies/"+p.ID, h, api.PolicyRequest{Name: "netns", HeartbeatSeconds: 30,
				Modules: api.PolicyModules{genName: {Enabled: &on, Settings: map[string]json.RawMessage{"count": json.RawMessage("0")}}}}, nil); err != nil {
				t.Fatal(err)
			}
			for time.Since(start) < 30*time.Second {
				if c = comp(); c.AppliedPolicyVersion != before {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			took := time.Since(start)
			if c.AppliedPolicyVersion == before {
				t.Fatalf("policy change not applied within one heartbeat (30s)")
			}
			t.Logf("policy change applied by the namespaced agent in %v (heartbeat interval 30s)", took.Round(time.Millisecond))
			if took > 10*time.Second {
				t.Fatalf("policy change took %v: long-poll should deliver it within seconds", took)
			}
		})
	}
}

func containsIP(ips []string, ip string) bool {
	for _, i := range ips {
		if i == ip {
			return true
		}
	}
	return false
}

// inProcAgent enrols and runs an agent in this process.
func inProcAgent(t *testing.T, url string, ca []byte, token string) {
	t.Helper()
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	if err := agent.Enroll(ctx, agent.EnrollOptions{ManagerURL: url, Token: token, CAPEM: ca, DataDir: data, Version: "e2e"}); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agentConfig(data), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestManagerKilledWhileIngesting SIGKILLs the manager in the middle of an
// event stream and restarts it: every event ends up stored exactly once.
func TestManagerKilledWhileIngesting(t *testing.T) {
	for _, d := range dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel() // the two databases share nothing
			pm := newProcManager(t, d)
			st := pm.openStore()
			run := "kill" + randHex(3)
			const n = 3000
			inProcAgent(t, pm.url, pm.ca(), genPolicy(t, st, run, n, 1500))
			// Kill it twice while events flow.
			for i := 0; i < 2; i++ {
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if r, _ := countRun(t, st, run); r > (i+1)*n/4 {
						break
					}
				}
				pm.stop(syscall.SIGKILL)
				time.Sleep(500 * time.Millisecond)
				pm.start()
			}
			waitCount(t, st, run, n, 90*time.Second)
		})
	}
}

// TestAgentKilledWhileUploading SIGKILLs the agent process in the middle of
// emitting and uploading and restarts it: its durable outbox resends what
// the manager had not acknowledged, the manager drops the duplicates.
func TestAgentKilledWhileUploading(t *testing.T) {
	for _, d := range dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel() // the two databases share nothing
			pm := newProcManager(t, d)
			st := pm.openStore()
			run := "akill" + randHex(3)
			const n = 3000
			ap := newAgentProc(t, pm.url, pm.ca(), genPolicy(t, st, run, n, 1500), "")
			for i := 0; i < 3; i++ {
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if ap.progress() > (i+1)*n/5 {
						break
					}
				}
				ap.stop(syscall.SIGKILL)
				ap.start()
			}
			waitCount(t, st, run, n, 90*time.Second)
		})
	}
}

// TestManagerDownWhileAgentsEmit stops the manager while agents keep
// emitting, then brings it back: the outbox holds everything meanwhile.
func TestManagerDownWhileAgentsEmit(t *testing.T) {
	down := 10 * time.Second
	if long() {
		down = 3 * time.Minute
	}
	for _, d := range dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel() // the two databases share nothing
			pm := newProcManager(t, d)
			st := pm.openStore()
			runA, runB := "downa"+randHex(3), "downb"+randHex(3)
			n := 2000
			tokA, tokB := genPolicy(t, st, runA, n, 150), genPolicy(t, st, runB, n, 150)
			apA := newAgentProc(t, pm.url, pm.ca(), tokA, "")
			apB := newAgentProc(t, pm.url, pm.ca(), tokB, "")
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if apA.progress() > 50 && apB.progress() > 50 {
					break
				}
			}
			pm.stop(syscall.SIGTERM)
			emittedBefore := apA.progress()
			time.Sleep(down)
			if apA.progress() <= emittedBefore {
				t.Fatalf("agent stopped emitting while the manager was down (%d → %d)", emittedBefore, apA.progress())
			}
			t.Logf("manager down %v; agent A emitted %d → %d meanwhile", down, emittedBefore, apA.progress())
			pm.start()
			waitCount(t, st, runA, n, 120*time.Second)
			waitCount(t, st, runB, n, 60*time.Second)
		})
	}
}
