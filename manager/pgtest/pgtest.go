// Package pgtest gives tests a PostgreSQL database of their own. It uses
// MAMORI_TEST_POSTGRES (a server DSN) when set, else the cluster that
// scripts/setup.d/postgres.sh started (its DSN in /tmp/mamori-pg/dsn), else
// it starts a throwaway cluster with the Debian PostgreSQL binaries (as the
// postgres user when run as root) on a loopback port, stopped by Main.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// SetupDSNFile is where scripts/setup.d/postgres.sh writes its server DSN.
const SetupDSNFile = "/tmp/mamori-pg/dsn"

var (
	once     sync.Once
	server   string
	startErr error
	stop     func()
)

// Main runs the tests and stops a cluster this process started.
func Main(m *testing.M) {
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// DSN returns a connection string to a new, empty database. Without a
// PostgreSQL to use it skips the test, or fails it when CI=true.
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { server, startErr = findServer() })
	if startErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgresql: %v", startErr)
		}
		t.Skipf("postgresql not available: %v", startErr)
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parsing postgres dsn: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "mamori_test_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", server)
		if err == nil {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			db.Close()
		}
	})
	u.Path = "/" + name
	return u.String()
}

func reachable(dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func findServer() (string, error) {
	if dsn := os.Getenv("MAMORI_TEST_POSTGRES"); dsn != "" {
		return dsn, reachable(dsn)
	}
	if b, err := os.ReadFile(SetupDSNFile); err == nil {
		dsn := strings.TrimSpace(string(b))
		if reachable(dsn) == nil {
			return dsn, nil
		}
	}
	return startCluster()
}

// BinDir finds the PostgreSQL server binaries.
func BinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("initdb not found (apt-get install postgresql)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

func startCluster() (string, error) {
	bin, err := BinDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "mamori-pgtest-")
	if err != nil {
		return "", err
	}
	run := func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root and no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
		run = func(args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	if out, err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=200", port, dir)
	if out, err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		return "", fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	stop = func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return dsn, reachable(dsn)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
