package store

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/pgtest"
)

// BenchmarkInsertEvents measures ingest in batches of 1000 (events/s is
// reported); run with -bench InsertEvents. Not part of the default run.
func BenchmarkInsertEvents(b *testing.B) {
	for _, d := range []string{SQLite, Postgres} {
		b.Run(d, func(b *testing.B) {
			dsn := ""
			if d == Postgres {
				dsn = pgtest.DSN(b)
			}
			s, err := Open(context.Background(), dsn, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			tn, _ := s.CreateTenant(ctx, "a")
			batches := make([][]event.Event, b.N)
			for i := range batches {
				batches[i] = mkEvents(1000, event.SeverityHigh)
			}
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.InsertEvents(ctx, tn.ID, "c_1", batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
			// CPU per event in this process (for SQLite: all of the work),
			// a steadier figure than events/s on a loaded machine.
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*1000), "cpu-µs/event")
		})
	}
}
