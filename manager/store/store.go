// Package store keeps the manager's state in SQLite (embedded, the default)
// or PostgreSQL (for several manager nodes). Both speak the same schema and
// the same SQL; the dialect only fills in column types, the append-only
// guard of the audit log and the bulk path of event ingest. Every query that
// touches a tenant's object takes the tenant ID, so isolation is enforced
// here and not left to the callers.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Sentinels for expected non-failures.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the manager's database.
type Store struct {
	db *sql.DB
	// wmu serialises this process's SQLite writes. SQLite has one writer
	// at a time; writers that meet a lock wait in its busy handler, which
	// sleeps in steps of up to 100 ms — seconds of latency under load for
	// no CPU. Queueing on a mutex instead hands the lock over at once.
	wmu     sync.Mutex
	stmts   sync.Map // query → *sql.Stmt, for the hot read paths
	dialect string
	conn    string // driver connection string (SQLite: the file path)
	// Observe, when set, is told how long each named operation took (for
	// the DB timing metrics).
	Observe func(op string, d time.Duration)
}

// Dialect reports SQLite or Postgres.
func (s *Store) Dialect() string { return s.dialect }

// DB exposes the pool for backup and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error {
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

// ParseDSN tells which database a --db value means: "postgres://…" and
// "postgresql://…" are PostgreSQL; "sqlite:///path", a bare path, or empty
// (→ dataDir/manager.db) are SQLite. It returns the dialect and the
// driver's connection string.
func ParseDSN(dsn, dataDir string) (dialect, conn string) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn
	case strings.HasPrefix(dsn, "sqlite://"):
		dsn = strings.TrimPrefix(dsn, "sqlite://")
	case dsn == "":
		dsn = filepath.Join(dataDir, "manager.db")
	}
	return SQLite, dsn
}

// Open connects and migrates the schema.
func Open(ctx context.Context, dsn, dataDir string) (*Store, error) {
	dialect, conn := ParseDSN(dsn, dataDir)
	var db *sql.DB
	var err error
	switch dialect {
	case Postgres:
		db, err = sql.Open("pgx", conn)
		if err == nil {
			db.SetMaxOpenConns(16)
			db.SetMaxIdleConns(16)
		}
	default:
		if err := os.MkdirAll(filepath.Dir(conn), 0o700); err != nil {
			return nil, fmt.Errorf("creating database directory: %w", err)
		}
		// Immediate transactions take the write lock at BEGIN, so two
		// writers queue on busy_timeout instead of failing at upgrade.
		db, err = sql.Open("sqlite", "file:"+conn+"?_txlock=immediate&_pragma=page_size(16384)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(20000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-32768)")
		if err == nil {
			db.SetMaxOpenConns(16)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	s := &Store{db: db, dialect: dialect, conn: conn}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to %s database: %w", dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

var _ = stdlib.GetDefaultDriver // keep the pgx driver registered

func (s *Store) dialectSQL(q string) string {
	r := map[string]string{}
	if s.dialect == Postgres {
		r["{{BLOB}}"] = "BYTEA"
		r["{{SERIAL}}"] = "BIGSERIAL PRIMARY KEY"
		r["{{AUDIT_APPEND_ONLY}}"] = "CREATE RULE audit_log_no_update AS ON UPDATE TO audit_log DO INSTEAD NOTHING;\n" +
			"CREATE RULE audit_log_no_delete AS ON DELETE TO audit_log DO INSTEAD NOTHING;"
		r["{{EVENTS_KEY_COLLATION}}"] = `ALTER TABLE events ALTER COLUMN tenant_id TYPE TEXT COLLATE "C", ALTER COLUMN id TYPE TEXT COLLATE "C", ALTER COLUMN computer_id TYPE TEXT COLLATE "C";`
	} else {
		r["{{BLOB}}"] = "BLOB"
		r["{{SERIAL}}"] = "INTEGER PRIMARY KEY AUTOINCREMENT"
		r["{{AUDIT_APPEND_ONLY}}"] = "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;\n" +
			"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
		r["{{EVENTS_KEY_COLLATION}}"] = ""
	}
	for k, v := range r {
		q = strings.ReplaceAll(q, k, v)
	}
	return q
}

// migrate applies the embedded migrations not applied yet, each in its own
// transaction, in file-name order.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	names, err := migrations.ReadDir("migrations")
	if err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
	for _, n := range names {
		b, err := migrations.ReadFile("migrations/" + n.Name())
		if err != nil {
			return fmt.Errorf("migrating schema: %w", err)
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, n.Name()).Scan(&one)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			for _, stmt := range splitSQL(s.dialectSQL(string(b))) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", n.Name(), err)
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, n.Name(), now())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrating schema: %w", err)
		}
	}
	return nil
}

// splitSQL cuts a migration into statements at semicolons that end a line,
// keeping trigger bodies (BEGIN … END;) whole.
func splitSQL(q string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, line := range strings.Split(q, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") || t == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		up := strings.ToUpper(t)
		if strings.Contains(up, " BEGIN ") && strings.HasPrefix(up, "CREATE TRIGGER") {
			depth++
		}
		if strings.HasSuffix(t, ";") {
			if depth > 0 && !strings.HasSuffix(up, "END;") {
				continue
			}
			depth = 0
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// lockW takes the write lock (SQLite only) and returns its release.
func (s *Store) lockW() func() {
	if s.dialect != SQLite {
		return func() {}
	}
	s.wmu.Lock()
	return s.wmu.Unlock
}

// prepared returns a statement prepared once for the pool: parsing the
// SQL is most of the cost of a small SQLite query.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// hotRow is QueryRowContext through a cached prepared statement.
func (s *Store) hotRow(ctx context.Context, q string, args ...any) rowScanner {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// hotQuery is QueryContext through a cached prepared statement.
func (s *Store) hotQuery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

type rowScanner interface{ Scan(...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// exec runs a writing statement.
func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	defer s.lockW()()
	return s.db.ExecContext(ctx, q, args...)
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	defer s.lockW()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) observe(op string, start time.Time) {
	if s.Observe != nil {
		s.Observe(op, time.Since(start))
	}
}

// NewID returns a random ID with a type prefix ("c_…" for a computer).
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func now() int64 { return time.Now().UnixNano() }

func toTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func fromTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding %T: %v", v, err)) // only our own types reach here
	}
	return string(b)
}

func unjs(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// isUnique tells a unique-constraint violation, by driver error code.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	var coder interface{ Code() int }
	if errors.As(err, &coder) {
		// SQLITE_CONSTRAINT_UNIQUE 2067, SQLITE_CONSTRAINT_PRIMARYKEY 1555
		return coder.Code() == 2067 || coder.Code() == 1555
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	return false
}
