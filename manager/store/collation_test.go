package store

import (
	"context"
	"testing"
)

// TestEventKeysCompareBytewise checks that PostgreSQL got the event key
// columns in the C collation (migration 0004): byte order, as SQLite
// compares TEXT, so paging by ID means the same on both.
func TestEventKeysCompareBytewise(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if s.Dialect() != Postgres {
			return // SQLite's TEXT comparison is bytewise already
		}
		{
			for _, col := range []string{"tenant_id", "id", "computer_id"} {
				var coll string
				err := s.db.QueryRowContext(ctx, `SELECT COALESCE(collation_name, '') FROM information_schema.columns WHERE table_name = 'events' AND column_name = $1`, col).Scan(&coll)
				if err != nil || coll != "C" {
					t.Errorf("events.%s collation = %q, %v; want C", col, coll, err)
				}
			}
		}
	})
}
