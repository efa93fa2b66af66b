package manager

import (
	"context"
	"sync"
	"testing"

	"github.com/mamori-sec/mamori/agent/budget"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/store"
)

// BenchmarkIngestHTTP uploads 1000-event batches from 4 agents at once over
// mTLS, through decoding, validation, storage and alert matching; it
// reports events/s. Not part of the default run (-bench IngestHTTP).
func BenchmarkIngestHTTP(b *testing.B) {
	for _, d := range []string{store.SQLite, store.Postgres} {
		b.Run(d, func(b *testing.B) {
			e := newEnvB(b, d)
			ctx := context.Background()
			var agents []*managertest.Agent
			for i := 0; i < 4; i++ {
				tok, err := e.m.CreateEnrollmentToken(ctx, "")
				if err != nil {
					b.Fatal(err)
				}
				a, err := managertest.EnrollAgent(ctx, e.m.URL(), e.m.CAPEM(), tok, api.HostInfo{Hostname: "h", MachineID: store.NewID("m")})
				if err != nil {
					b.Fatal(err)
				}
				agents = append(agents, a)
			}
			batches := make([][]event.Event, b.N)
			for i := range batches {
				batches[i] = managertest.Events(1000, "antimalware", event.SeverityLow)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			next := make(chan []event.Event)
			for _, a := range agents {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for evs := range next {
						if _, err := a.Upload(ctx, evs); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for _, evs := range batches {
				next <- evs
			}
			close(next)
			wg.Wait()
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkHeartbeat measures one agent's heartbeat round trip (no
// long-poll) against a manager with 200 enrolled computers. It also
// reports the process CPU per heartbeat: wall time per op hides the
// manager's share on a loaded machine (with PostgreSQL the database's own
// CPU is not in the figure; the agent side's TLS and JSON are, as a
// constant).
func BenchmarkHeartbeat(b *testing.B) {
	for _, d := range []string{store.SQLite, store.Postgres} {
		b.Run(d, func(b *testing.B) {
			e := newEnvB(b, d)
			ctx := context.Background()
			tok, _ := e.m.CreateEnrollmentToken(ctx, "", WithMaxUses(200))
			var agents []*managertest.Agent
			for i := 0; i < 200; i++ {
				a, err := managertest.EnrollAgent(ctx, e.m.URL(), e.m.CAPEM(), tok, api.HostInfo{Hostname: "h", MachineID: store.NewID("m")})
				if err != nil {
					b.Fatal(err)
				}
				agents = append(agents, a)
			}
			hb := api.Heartbeat{Modules: []api.ModuleState{{Name: "integrity", State: "running"}, {Name: "antimalware", State: "running"}}}
			for _, a := range agents { // warm connections and versions
				r, err := a.Heartbeat(ctx, hb, 0)
				if err != nil {
					b.Fatal(err)
				}
				hb.PolicyVersion = r.PolicyVersion
			}
			cpu0 := budget.ProcessCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := agents[i%len(agents)].Heartbeat(ctx, hb, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((budget.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
