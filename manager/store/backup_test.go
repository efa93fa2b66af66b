package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/pgtest"
)

// TestBackupRestoreRoundTrip backs up each database while a writer keeps
// inserting, and restores into both kinds: every table comes back as it was
// at the snapshot.
func TestBackupRestoreRoundTrip(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustTenant(t, s, "a")
		c := enroll(t, s, a.ID)
		if _, err := s.InsertEvents(ctx, a.ID, c.ID, mkEvents(700, event.SeverityHigh)); err != nil {
			t.Fatal(err)
		}
		s.PutRulePack(ctx, a.ID, api.RulePack{Name: "p", Version: "1", SHA256: "x", Files: 1}, []byte{0, 1, 2, 255})
		s.Audit(ctx, api.AuditEntry{TenantID: a.ID, Actor: "key:k", Action: "x", ObjectType: "y"})
		s.PutPolicy(ctx, a.ID, api.Policy{Name: "pol"})

		// A writer keeps going during the backup: the archive must still
		// be one consistent snapshot (checked below by event count parity).
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				if _, err := s.InsertEvents(ctx, a.ID, c.ID, mkEvents(10, event.SeverityLow)); err != nil {
					done <- err
					return
				}
			}
		}()
		var buf bytes.Buffer
		err := s.Backup(ctx, &buf, map[string][]byte{"ca.key": []byte("secret")})
		close(stop)
		if werr := <-done; werr != nil {
			t.Fatalf("writer during backup: %v", werr)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []string{SQLite, Postgres} {
			t.Run("into_"+to, func(t *testing.T) {
				dsn := ""
				if to == Postgres {
					dsn = pgtest.DSN(t)
				}
				r, err := Open(ctx, dsn, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				files, err := r.Restore(ctx, bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				if string(files["ca.key"]) != "secret" {
					t.Fatalf("files = %v", files)
				}
				n, _ := r.CountEvents(ctx, a.ID)
				if n < 700 || (n-700)%10 != 0 {
					t.Fatalf("restored %d events: not a snapshot of whole batches", n)
				}
				got, err := r.ComputerBySerial(ctx, c.CertSerial)
				if err != nil || got.ID != c.ID {
					t.Fatalf("computer after restore = %+v, %v", got, err)
				}
				b, err := r.RulePackArchive(ctx, a.ID, "p", "1")
				if err != nil || !bytes.Equal(b, []byte{0, 1, 2, 255}) {
					t.Fatalf("blob after restore = %v, %v", b, err)
				}
				log, _ := r.AuditLog(ctx, a.ID, 0, 10)
				if len(log) != 1 || log[0].Actor != "key:k" {
					t.Fatalf("audit after restore = %+v", log)
				}
				// New audit entries continue after the restored IDs.
				if err := r.Audit(ctx, api.AuditEntry{TenantID: a.ID, Actor: "system", Action: "after", ObjectType: "y", Time: time.Now()}); err != nil {
					t.Fatalf("audit after restore: %v", err)
				}
				if _, err := r.Restore(ctx, bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrNotEmpty) {
					t.Fatalf("restore into a used database: %v", err)
				}
			})
		}
	})
}
