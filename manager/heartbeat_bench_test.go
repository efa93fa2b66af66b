package manager

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/store"
)

// BenchmarkHeartbeatCPU is BenchmarkHeartbeat reporting the process CPU per
// heartbeat: wall time per op hides the manager's share on a loaded
// machine (with PostgreSQL, the database's own CPU is not in the figure;
// the agent side's TLS and JSON are, as a constant).
func BenchmarkHeartbeatCPU(b *testing.B) {
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
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := agents[i%len(agents)].Heartbeat(ctx, hb, 0); err != nil {
					b.Fatal(err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
