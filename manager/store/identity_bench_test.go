package store

import (
	"context"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent/budget"
	"github.com/mamori-sec/mamori/api"
)

// BenchmarkAgentLookup compares what authenticating an agent request costs:
// the full row (ComputerBySerial) against the identity columns, and the
// identity plus the pending-commands check against identity followed by
// PendingCommands (a heartbeat's two round trips before), and the same for
// a long-poll's re-read on wake-up. Run with -bench
// AgentLookup -benchmem; cpu-µs/op is this process's CPU per lookup.
func BenchmarkAgentLookup(b *testing.B) {
	for _, d := range []string{SQLite, Postgres} {
		b.Run(d, func(b *testing.B) {
			s := openBench(b, d)
			ctx := context.Background()
			tn, _ := s.CreateTenant(ctx, "a")
			tok, err := s.CreateToken(ctx, tn.ID, api.TokenRequest{Group: "web"}, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			c, _, err := s.Enroll(ctx, tok.Token, api.Computer{ID: NewID("c_"), CertSerial: NewID(""), CertFingerprint: "f", Host: api.HostInfo{Hostname: "h", MachineID: "m"}})
			if err != nil {
				b.Fatal(err)
			}
			hb := api.Heartbeat{Host: api.HostInfo{Hostname: "h", OS: "debian", IPs: []string{"10.0.0.1", "fe80::1"}},
				Modules: []api.ModuleState{{Name: "integrity", State: "running"}, {Name: "antimalware", State: "running"}}}
			if err := s.RecordHeartbeat(ctx, c, hb, 0, time.Now()); err != nil {
				b.Fatal(err)
			}
			for _, v := range []struct {
				name string
				fn   func() error
			}{
				{"full", func() error { _, err := s.ComputerBySerial(ctx, c.CertSerial); return err }},
				{"identity", func() error { _, err := s.ComputerIdentityBySerial(ctx, c.CertSerial, false); return err }},
				{"full+pending", func() error {
					if _, err := s.ComputerBySerial(ctx, c.CertSerial); err != nil {
						return err
					}
					_, err := s.PendingCommands(ctx, tn.ID, c.ID)
					return err
				}},
				{"identity+pending", func() error { _, err := s.ComputerIdentityBySerial(ctx, c.CertSerial, true); return err }},
				// A long-poll's periodic re-read, before and after.
				{"wake/full+pending", func() error {
					if _, err := s.Computer(ctx, tn.ID, c.ID); err != nil {
						return err
					}
					_, err := s.PendingCommands(ctx, tn.ID, c.ID)
					return err
				}},
				{"wake/identity+pending", func() error { _, err := s.ComputerIdentityByID(ctx, tn.ID, c.ID, true); return err }},
			} {
				b.Run(v.name, func(b *testing.B) {
					cpu0 := budget.ProcessCPU()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := v.fn(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64((budget.ProcessCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
				})
			}
		})
	}
}
