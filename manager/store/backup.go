package store

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// backupTables lists every table in restore order (parents first).
var backupTables = []string{
	"tenants", "tenant_settings", "users", "api_keys", "enrollment_tokens", "policies", "computers",
	"rulepacks", "rulepack_schedules", "commands", "events", "alert_rules", "alerts", "notifiers",
	"audit_log", "policy_versions",
}

// BackupFormat heads an archive.
type BackupFormat struct {
	Format  int       `json:"format"`
	Dialect string    `json:"dialect"` // where it was taken; restore works into either
	Created time.Time `json:"created"`
	Tables  []string  `json:"tables"`
	Files   []string  `json:"files"`
}

// Backup writes one consistent archive (tar.gz) of every table, as JSON
// lines read in a single snapshot transaction while the manager keeps
// running, plus the given files (the CA and signing keys from the data
// directory). The format is the same for SQLite and PostgreSQL, so a
// backup restores into either.
func (s *Store) Backup(ctx context.Context, w io.Writer, files map[string][]byte) error {
	db := s.db
	opts := &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	if s.dialect == SQLite {
		// A deferred read transaction in WAL mode is a snapshot and does not
		// block the manager's writers; the main pool begins IMMEDIATE.
		ro, err := sql.Open("sqlite", "file:"+s.conn+"?_pragma=busy_timeout(20000)")
		if err != nil {
			return fmt.Errorf("opening database for backup: %w", err)
		}
		defer ro.Close()
		db, opts = ro, nil
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("starting backup transaction: %w", err)
	}
	defer tx.Rollback()
	if s.dialect == SQLite {
		// The snapshot starts at the first read.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&n); err != nil {
			return fmt.Errorf("starting backup snapshot: %w", err)
		}
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	head := BackupFormat{Format: 1, Dialect: s.dialect, Created: time.Now().UTC(), Tables: backupTables}
	for name := range files {
		head.Files = append(head.Files, name)
	}
	hb, _ := json.Marshal(head)
	if err := addTar(tw, "format.json", hb); err != nil {
		return err
	}
	for name, b := range files {
		if err := addTar(tw, "files/"+name, b); err != nil {
			return err
		}
	}
	for _, table := range backupTables {
		if err := dumpTable(ctx, tx, tw, table); err != nil {
			return fmt.Errorf("backing up %s: %w", table, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func addTar(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	_, err := tw.Write(b)
	return err
}

// dumpTable spools a table to a temporary file (tar needs the size first)
// and adds it: a header line with the column names, then one JSON array
// per row. Blobs are {"b64": "…"}.
func dumpTable(ctx context.Context, tx *sql.Tx, tw *tar.Writer, table string) error {
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "mamori-backup-*.jsonl")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(cols); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := make([]any, len(cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				out[i] = map[string]string{"b64": base64.StdEncoding.EncodeToString(b)}
			} else {
				out[i] = v
			}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	st, err := tmp.Stat()
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "tables/" + table + ".jsonl", Mode: 0o600, Size: st.Size(), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, tmp)
	return err
}

// ErrNotEmpty is returned when restoring into a database that has data.
var ErrNotEmpty = errors.New("database is not empty")

// Restore reads an archive made by Backup into this (empty, migrated)
// database in one transaction and returns the files it carried.
func (s *Store) Restore(ctx context.Context, r io.Reader) (map[string][]byte, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, fmt.Errorf("restoring: %w (%d tenants); restore into a fresh database", ErrNotEmpty, n)
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading backup: %w", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var head *BackupFormat
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// Restored rows are the originals: the audit log's append-only
		// guard only refuses UPDATE and DELETE, so INSERT goes through.
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("reading backup: %w", err)
			}
			switch {
			case h.Name == "format.json":
				head = &BackupFormat{}
				if err := json.NewDecoder(tr).Decode(head); err != nil {
					return fmt.Errorf("reading backup format.json: %w", err)
				}
				if head.Format != 1 {
					return fmt.Errorf("reading backup: format %d not supported", head.Format)
				}
			case strings.HasPrefix(h.Name, "files/"):
				b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
				if err != nil {
					return err
				}
				files[strings.TrimPrefix(h.Name, "files/")] = b
			case strings.HasPrefix(h.Name, "tables/") && strings.HasSuffix(h.Name, ".jsonl"):
				if head == nil {
					return fmt.Errorf("reading backup: %s before format.json", h.Name)
				}
				table := strings.TrimSuffix(strings.TrimPrefix(h.Name, "tables/"), ".jsonl")
				if !knownTable(table) {
					return fmt.Errorf("reading backup: unknown table %q", table)
				}
				if err := s.loadTable(ctx, tx, table, tr); err != nil {
					return fmt.Errorf("restoring %s: %w", table, err)
				}
			}
		}
		if head == nil {
			return fmt.Errorf("reading backup: no format.json: not a mamori backup")
		}
		if s.dialect == Postgres {
			_, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('audit_log', 'id'), COALESCE((SELECT MAX(id) FROM audit_log), 0) + 1, false)`)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

func knownTable(t string) bool {
	for _, k := range backupTables {
		if k == t {
			return true
		}
	}
	return false
}

func (s *Store) loadTable(ctx context.Context, tx *sql.Tx, table string, r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	dec.UseNumber()
	var cols []string
	if err := dec.Decode(&cols); err != nil {
		return fmt.Errorf("header line: %w", err)
	}
	for _, c := range cols {
		if strings.ContainsAny(c, " \"';()") {
			return fmt.Errorf("column name %q", c)
		}
	}
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(ph, ", ")+`)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for line := 2; ; line++ {
		var row []any
		err := dec.Decode(&row)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if len(row) != len(cols) {
			return fmt.Errorf("line %d: %d values for %d columns", line, len(row), len(cols))
		}
		for i, v := range row {
			switch x := v.(type) {
			case json.Number:
				n, err := x.Int64()
				if err != nil {
					return fmt.Errorf("line %d: column %s: %w", line, cols[i], err)
				}
				row[i] = n
			case map[string]any:
				b, err := base64.StdEncoding.DecodeString(fmt.Sprint(x["b64"]))
				if err != nil {
					return fmt.Errorf("line %d: column %s: %w", line, cols[i], err)
				}
				row[i] = b
			case bool:
				row[i] = map[bool]int64{false: 0, true: 1}[x]
			}
		}
		if _, err := stmt.ExecContext(ctx, row...); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
}
