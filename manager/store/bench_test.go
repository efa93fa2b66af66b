package store

import (
	"context"
	"testing"

	"github.com/mamori-sec/mamori/agent/budget"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/pgtest"
)

// BenchmarkInsertEvents measures ingest in batches of 1000 (events/s is
// reported); run with -bench InsertEvents. Not part of the default run.
func BenchmarkInsertEvents(b *testing.B) {
	for _, d := range []string{SQLite, Postgres} {
		b.Run(d, func(b *testing.B) {
			s := openBench(b, d)
			ctx := context.Background()
			tn, _ := s.CreateTenant(ctx, "a")
			batches := make([][]event.Event, b.N)
			for i := range batches {
				batches[i] = mkEvents(1000, event.SeverityHigh)
			}
			cpu0 := budget.ProcessCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.InsertEvents(ctx, tn.ID, "c_1", batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
			// CPU per event in this process (for SQLite: all of the work),
			// a steadier figure than events/s on a loaded machine.
			b.ReportMetric(float64((budget.ProcessCPU()-cpu0).Microseconds())/float64(b.N*1000), "cpu-µs/event")
		})
	}
}

// openBench opens a store of dialect d for a benchmark (PostgreSQL on the
// test cluster), closed when it ends.
func openBench(b *testing.B, d string) *Store {
	dsn := ""
	if d == Postgres {
		dsn = pgtest.DSN(b)
	}
	s, err := Open(context.Background(), dsn, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
