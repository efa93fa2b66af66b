package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// eachDB runs fn against a fresh SQLite and a fresh PostgreSQL database:
// the one suite both back ends must pass.
func eachDB(t *testing.T, fn func(t *testing.T, s *Store)) {
	for _, d := range []string{SQLite, Postgres} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			dsn := ""
			if d == Postgres {
				dsn = pgtest.DSN(t)
			}
			s, err := Open(context.Background(), dsn, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			fn(t, s)
		})
	}
}

func mustTenant(t *testing.T, s *Store, name string) api.Tenant {
	t.Helper()
	tn, err := s.CreateTenant(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func enroll(t *testing.T, s *Store, tenant string) api.Computer {
	t.Helper()
	ctx := context.Background()
	tok, err := s.CreateToken(ctx, tenant, api.TokenRequest{Group: "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.Enroll(ctx, tok.Token, api.Computer{ID: NewID("c_"), Host: api.HostInfo{Hostname: "h", MachineID: "m"}, CertSerial: NewID(""), CertFingerprint: "f", CertNotAfter: time.Now().Add(time.Hour), Enrolled: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMigrateTwice(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		if err := s.migrate(context.Background()); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
	})
}

func TestTenantsAndKeys(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		if _, err := s.CreateTenant(ctx, "a"); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate tenant: %v, want ErrConflict", err)
		}
		k, err := s.CreateAPIKey(ctx, a.ID, "ci", false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.APIKeyBySecret(ctx, k.Key)
		if err != nil || got.TenantID != a.ID || got.ID != k.ID {
			t.Fatalf("APIKeyBySecret = %+v, %v", got, err)
		}
		if _, err := s.APIKeyBySecret(ctx, k.Key+"x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("wrong secret: %v", err)
		}
		if err := s.RevokeAPIKey(ctx, a.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKeyBySecret(ctx, k.Key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoked key still works: %v", err)
		}
	})
}

func TestEnrollTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		comp := func() api.Computer {
			return api.Computer{ID: NewID("c_"), CertSerial: NewID(""), CertFingerprint: "f", Enrolled: time.Now()}
		}
		tok, _ := s.CreateToken(ctx, a.ID, api.TokenRequest{MaxUses: 2, Group: "db", Tags: []string{"x"}}, time.Hour)
		for i := 0; i < 2; i++ {
			c, _, err := s.Enroll(ctx, tok.Token, comp())
			if err != nil {
				t.Fatalf("use %d: %v", i, err)
			}
			if c.TenantID != a.ID || c.Group != "db" {
				t.Fatalf("computer took %q/%q from token, want %q/db", c.TenantID, c.Group, a.ID)
			}
		}
		if _, _, err := s.Enroll(ctx, tok.Token, comp()); !errors.Is(err, ErrTokenUsedUp) {
			t.Fatalf("third use: %v, want ErrTokenUsedUp", err)
		}
		exp, _ := s.CreateToken(ctx, a.ID, api.TokenRequest{}, -time.Second)
		if _, _, err := s.Enroll(ctx, exp.Token, comp()); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("expired: %v", err)
		}
		if _, _, err := s.Enroll(ctx, "mt_nope", comp()); !errors.Is(err, ErrTokenUnknown) {
			t.Fatalf("unknown: %v", err)
		}
		rev, _ := s.CreateToken(ctx, a.ID, api.TokenRequest{}, time.Hour)
		s.RevokeToken(ctx, a.ID, rev.ID)
		if _, _, err := s.Enroll(ctx, rev.Token, comp()); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("revoked: %v", err)
		}
		cs, _ := s.Computers(ctx, a.ID, ComputerFilter{})
		if len(cs) != 2 {
			t.Fatalf("%d computers, want 2 (refused tokens must not create any)", len(cs))
		}
	})
}

func TestComputerHeartbeat(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		c := enroll(t, s, a.ID)
		hb := api.Heartbeat{Host: api.HostInfo{Hostname: "web1", OS: "debian", IPs: []string{"10.0.0.1"}}, PolicyVersion: "v1",
			Modules: []api.ModuleState{{Name: "integrity", State: "running"}}, QueueDepth: 7}
		at := time.Now().Truncate(time.Millisecond)
		if err := s.RecordHeartbeat(ctx, c, hb, 1500*time.Millisecond, at); err != nil {
			t.Fatal(err)
		}
		got, err := s.ComputerBySerial(ctx, c.CertSerial)
		if err != nil {
			t.Fatal(err)
		}
		if got.Host.Hostname != "web1" || got.AppliedPolicyVersion != "v1" || got.QueueDepth != 7 || got.ClockSkewSeconds != 1.5 || !got.LastHeartbeat.Equal(at) || len(got.Modules) != 1 {
			t.Fatalf("after heartbeat: %+v", got)
		}
		b := mustTenant(t, s, "b")
		if _, err := s.Computer(ctx, b.ID, c.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other tenant reads computer: %v", err)
		}
		if err := s.SetDeactivated(ctx, b.ID, c.ID, true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other tenant deactivates computer: %v", err)
		}
	})
}

func TestPolicyTree(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		root, err := s.PutPolicy(ctx, a.ID, api.Policy{Name: "root"})
		if err != nil {
			t.Fatal(err)
		}
		child, err := s.PutPolicy(ctx, a.ID, api.Policy{Name: "child", ParentID: root.ID})
		if err != nil {
			t.Fatal(err)
		}
		root.ParentID = child.ID
		if _, err := s.PutPolicy(ctx, a.ID, root); !errors.Is(err, ErrCycle) {
			t.Fatalf("cycle: %v, want ErrCycle", err)
		}
		chain, err := s.PolicyChain(ctx, a.ID, child.ID)
		if err != nil || len(chain) != 2 || chain[0].ID != root.ID {
			t.Fatalf("chain = %v, %v", chain, err)
		}
		b := mustTenant(t, s, "b")
		if _, err := s.PutPolicy(ctx, b.ID, api.Policy{Name: "x", ParentID: root.ID}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("parent from another tenant: %v", err)
		}
		if err := s.DeletePolicy(ctx, a.ID, root.ID); !errors.Is(err, ErrInUse) {
			t.Fatalf("deleting a parent: %v", err)
		}
	})
}

func mkEvents(n int, sev event.Severity) []event.Event {
	out := make([]event.Event, n)
	base := time.Now().Add(-time.Hour)
	for i := range out {
		out[i] = event.Event{ID: event.NewID(), Time: base.Add(time.Duration(i) * time.Second), Kind: "malware.detected", Severity: sev,
			Module: "antimalware", Message: fmt.Sprintf("found EICAR %d", i), Rule: &event.Rule{ID: "eicar"}}
	}
	return out
}

func TestEventsIdempotentAndQuery(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		c := enroll(t, s, a.ID)
		evs := mkEvents(1200, event.SeverityHigh)
		ins, err := s.InsertEvents(ctx, a.ID, c.ID, evs)
		if err != nil || len(ins) != 1200 {
			t.Fatalf("insert = %d, %v", len(ins), err)
		}
		ins, err = s.InsertEvents(ctx, a.ID, c.ID, append(evs[:600:600], mkEvents(5, event.SeverityLow)...))
		if err != nil || len(ins) != 5 {
			t.Fatalf("re-insert = %d new, %v; want 5", len(ins), err)
		}
		if n, _ := s.CountEvents(ctx, a.ID); n != 1205 {
			t.Fatalf("count = %d, want 1205", n)
		}
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			got, next, err := s.Events(ctx, a.ID, EventFilter{MinSeverity: event.SeverityHigh, Limit: 250, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got {
				if seen[e.ID] {
					t.Fatalf("event %s on two pages", e.ID)
				}
				seen[e.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 1200 {
			t.Fatalf("paged %d high events, want 1200", len(seen))
		}
		got, _, _ := s.Events(ctx, a.ID, EventFilter{Text: "eicar 1177", Limit: 10})
		if len(got) != 1 || got[0].Message != "found EICAR 1177" {
			t.Fatalf("text search found %d", len(got))
		}
		if got, _, _ := s.Events(ctx, a.ID, EventFilter{Text: "%"}); len(got) != 0 {
			t.Fatalf("%% must be literal, found %d", len(got))
		}
		b := mustTenant(t, s, "b")
		if got, _, _ := s.Events(ctx, b.ID, EventFilter{}); len(got) != 0 {
			t.Fatalf("tenant b sees %d of a's events", len(got))
		}
		if _, _, err := s.Events(ctx, a.ID, EventFilter{Cursor: "garbage!"}); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
		n, err := s.PruneEvents(ctx, a.ID, evs[100].Time)
		if err != nil || n != 105 { // 100 of the first batch and the 5 of the second, made at the same base time
			t.Fatalf("prune = %d, %v; want 105", n, err)
		}
	})
}

func TestAuditAppendOnly(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		if err := s.Audit(ctx, api.AuditEntry{TenantID: a.ID, Actor: "key:k", Action: "policy.create", ObjectType: "policy"}); err != nil {
			t.Fatal(err)
		}
		s.exec(ctx, `UPDATE audit_log SET actor = 'forged'`)
		s.exec(ctx, `DELETE FROM audit_log`)
		log, err := s.AuditLog(ctx, a.ID, 0, 10)
		if err != nil || len(log) != 1 || log[0].Actor != "key:k" {
			t.Fatalf("audit log after update/delete attempts = %+v, %v", log, err)
		}
	})
}

func TestRulePackDistribution(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		for _, v := range []string{"1", "2"} {
			if _, err := s.PutRulePack(ctx, a.ID, api.RulePack{Name: "base", Version: v, SHA256: "s" + v, Files: 1}, []byte("archive"+v)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		if _, err := s.PutRulePack(ctx, a.ID, api.RulePack{Name: "base", Version: "2", SHA256: "other"}, []byte("x")); !errors.Is(err, ErrConflict) {
			t.Fatalf("same version, other content: %v", err)
		}
		p, err := s.PendingPacks(ctx)
		if err != nil || len(p) != 1 || p[0].Version != "2" {
			t.Fatalf("pending = %+v, %v", p, err)
		}
		if err := s.Distribute(ctx, a.ID, "base", "2", time.Now()); err != nil {
			t.Fatal(err)
		}
		d, _ := s.DistributedPacks(ctx, a.ID)
		if d["base"].Version != "2" {
			t.Fatalf("distributed = %+v", d)
		}
		if p, _ := s.PendingPacks(ctx); len(p) != 0 {
			t.Fatalf("still pending: %+v", p)
		}
		b, err := s.RulePackArchive(ctx, a.ID, "base", "1")
		if err != nil || string(b) != "archive1" {
			t.Fatalf("archive = %q, %v", b, err)
		}
	})
}

func TestCommandsAndAlerts(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		c := enroll(t, s, a.ID)
		cmd, err := s.QueueCommand(ctx, a.ID, c.ID, api.CommandScanNow, map[string]string{"module": "antimalware"})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := s.PendingCommands(ctx, a.ID, c.ID)
		if len(p) != 1 || p[0].Args["module"] != "antimalware" {
			t.Fatalf("pending = %+v", p)
		}
		if err := s.AckCommand(ctx, a.ID, c.ID, cmd.ID, api.CommandAck{OK: true}); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.PendingCommands(ctx, a.ID, c.ID); len(p) != 0 {
			t.Fatalf("acked command still pending")
		}
		r, err := s.PutAlertRule(ctx, a.ID, api.AlertRule{Name: "high", Enabled: true, MinSeverity: "high"})
		if err != nil {
			t.Fatal(err)
		}
		al := api.Alert{ID: NewID("al_"), TenantID: a.ID, AlertRuleID: r.ID, EventID: "e1", Severity: "high", Message: "m", Created: time.Now()}
		if ok, err := s.InsertAlert(ctx, al); !ok || err != nil {
			t.Fatalf("insert alert = %v, %v", ok, err)
		}
		al.ID = NewID("al_")
		if ok, _ := s.InsertAlert(ctx, al); ok {
			t.Fatal("same rule+event alerted twice")
		}
		if err := s.SetAlertStatus(ctx, a.ID, al.ID, api.AlertAcknowledged, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ack of the refused duplicate: %v", err)
		}
	})
}

// FuzzDecodeCursor: paging cursors come from clients; decoding must never
// panic and must round-trip what encodeCursor made.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(1700000000000000000, "0191abc"))
	f.Add("")
	f.Add("garbage!")
	f.Fuzz(func(t *testing.T, c string) {
		ts, id, err := decodeCursor(c)
		if err != nil {
			return
		}
		if ts2, id2, err := decodeCursor(encodeCursor(ts, id)); err != nil || ts2 != ts || id2 != id {
			t.Fatalf("round trip of (%d, %q) = (%d, %q, %v)", ts, id, ts2, id2, err)
		}
	})
}
