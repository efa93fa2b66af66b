package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// identityOf keeps of a full computer what ComputerIdentityBySerial reads.
func identityOf(c api.Computer) api.Computer {
	return api.Computer{ID: c.ID, TenantID: c.TenantID, Host: api.HostInfo{Hostname: c.Host.Hostname, MachineID: c.Host.MachineID, InstanceID: c.Host.InstanceID},
		CertSerial: c.CertSerial, CertFingerprint: c.CertFingerprint, Deactivated: c.Deactivated, PolicyID: c.PolicyID, Group: c.Group,
		Tags: c.Tags, Overrides: c.Overrides}
}

func TestComputerIdentityBySerial(t *testing.T) {
	on := true
	tests := []struct {
		name        string
		change      func(t *testing.T, s *Store, c api.Computer)
		wantPending bool
	}{
		{"fresh", func(*testing.T, *Store, api.Computer) {}, false},
		{"heartbeat and assignment", func(t *testing.T, s *Store, c api.Computer) {
			hb := api.Heartbeat{Host: api.HostInfo{Hostname: "web1", OS: "debian", IPs: []string{"10.0.0.1"}}, PolicyVersion: "v1",
				Modules: []api.ModuleState{{Name: "integrity", State: "running"}}, RulePacks: []api.RulePackRef{{Name: "p", Version: "1"}}}
			if err := s.RecordHeartbeat(context.Background(), c, hb, time.Second, time.Now()); err != nil {
				t.Fatal(err)
			}
			tags := []string{"db", "prod"}
			ovr := api.PolicyModules{"integrity": {Enabled: &on, RulePacks: []string{"x"}, Settings: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}}
			pid, grp := "p_1", "db"
			if _, err := s.PatchComputer(context.Background(), c.TenantID, c.ID, api.ComputerPatch{PolicyID: &pid, Group: &grp, Tags: &tags, Overrides: &ovr}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"emptied assignment", func(t *testing.T, s *Store, c api.Computer) {
			tags, ovr := []string{}, api.PolicyModules{}
			if _, err := s.PatchComputer(context.Background(), c.TenantID, c.ID, api.ComputerPatch{Tags: &tags, Overrides: &ovr}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"deactivated", func(t *testing.T, s *Store, c api.Computer) {
			if err := s.SetDeactivated(context.Background(), c.TenantID, c.ID, true); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"command pending", func(t *testing.T, s *Store, c api.Computer) {
			if _, err := s.QueueCommand(context.Background(), c.TenantID, c.ID, "scan", nil); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"command delivered, not acknowledged", func(t *testing.T, s *Store, c api.Computer) {
			if _, err := s.QueueCommand(context.Background(), c.TenantID, c.ID, "scan", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PendingCommands(context.Background(), c.TenantID, c.ID); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"command acknowledged", func(t *testing.T, s *Store, c api.Computer) {
			cmd, err := s.QueueCommand(context.Background(), c.TenantID, c.ID, "scan", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AckCommand(context.Background(), c.TenantID, c.ID, cmd.ID, api.CommandAck{OK: true}); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := enroll(t, s, a.ID)
				other := enroll(t, s, a.ID) // its commands are not c's
				if _, err := s.QueueCommand(ctx, a.ID, other.ID, "scan", nil); err != nil {
					t.Fatal(err)
				}
				tt.change(t, s, c)
				full, err := s.ComputerBySerial(ctx, c.CertSerial)
				if err != nil {
					t.Fatal(err)
				}
				lookups := map[string]func(bool) (ComputerIdentity, error){
					"by serial": func(p bool) (ComputerIdentity, error) { return s.ComputerIdentityBySerial(ctx, c.CertSerial, p) },
					"by ID":     func(p bool) (ComputerIdentity, error) { return s.ComputerIdentityByID(ctx, c.TenantID, c.ID, p) },
				}
				for how, lookup := range lookups {
					for _, withPending := range []bool{false, true} {
						id, err := lookup(withPending)
						if err != nil {
							t.Fatal(err)
						}
						if want := identityOf(full); !reflect.DeepEqual(id.Computer, want) {
							t.Errorf("%s, withPending=%v: identity\n%#v\nwant (from the full read)\n%#v", how, withPending, id.Computer, want)
						}
						if id.PendingKnown != withPending || id.HasPending != (withPending && tt.wantPending) {
							t.Errorf("%s, withPending=%v: PendingKnown %v HasPending %v, want pending %v", how, withPending, id.PendingKnown, id.HasPending, tt.wantPending)
						}
					}
				}
			})
		}
		if _, err := s.ComputerIdentityBySerial(ctx, "no-such-serial", true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown serial: %v, want ErrNotFound", err)
		}
		b := mustTenant(t, s, "b")
		c := enroll(t, s, a.ID)
		if _, err := s.ComputerIdentityByID(ctx, b.ID, c.ID, true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other tenant's computer: %v, want ErrNotFound", err)
		}
	})
}

// The fast paths must give exactly what json.Unmarshal gives.
func TestUnjsFastPaths(t *testing.T) {
	for _, s := range []string{"", "null", "[]", "{}", `["a","b"]`, `[]  `, `{"integrity":{"enabled":true}}`, `[{"name":"integrity","state":"running"}]`, `[{"name":"p","version":"1"}]`, `[`} {
		t.Run(s, func(t *testing.T) {
			check := func(what string, fast, slow any, fastErr error) {
				t.Helper()
				slowErr := unjs(s, slow)
				if (fastErr == nil) != (slowErr == nil) || !reflect.DeepEqual(fast, slow) {
					t.Errorf("%s: fast %#v (%v), json %#v (%v)", what, fast, fastErr, slow, slowErr)
				}
			}
			var t1, t2 []string
			check("tags", &t1, &t2, unjsSlice(s, &t1))
			var o1, o2 api.PolicyModules
			check("overrides", &o1, &o2, unjsMap(s, &o1))
			var m1, m2 []api.ModuleState
			check("modules", &m1, &m2, unjsSlice(s, &m1))
			var p1, p2 []api.RulePackRef
			check("rulepacks", &p1, &p2, unjsSlice(s, &p1))
		})
	}
}
