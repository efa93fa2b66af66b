package manager

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/pgtest"
	"github.com/mamori-sec/mamori/manager/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a running manager with an admin key.
type env struct {
	t     *testing.T
	m     *Manager
	admin string
	http  *http.Client
}

func eachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, d := range []string{store.SQLite, store.Postgres} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, d, nil))
		})
	}
}

// newEnvB starts a manager for a benchmark.
func newEnvB(b *testing.B, dialect string) *env {
	cfg := Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", JobInterval: time.Hour}
	if dialect == store.Postgres {
		cfg.DB = pgtest.DSN(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return &env{m: m}
}

func newEnv(t *testing.T, dialect string, tweak func(*Config)) *env {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxWait: 10 * time.Second, JobInterval: time.Hour}
	if dialect == store.Postgres {
		cfg.DB = pgtest.DSN(t)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	key, created, err := m.BootstrapAdmin(ctx)
	if err != nil || !created {
		t.Fatalf("BootstrapAdmin = %v, %v", created, err)
	}
	return &env{t: t, m: m, admin: key, http: managertest.TLSClient(m.CAPEM(), nil)}
}

// call makes a public API call with key and decodes the answer into out;
// it returns the HTTP status (0 and fails the test on transport errors).
func (e *env) call(key, method, path string, body, out any) int {
	e.t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	err := managertest.Do(context.Background(), e.http, method, e.m.URL()+path, h, body, out)
	if st, ok := err.(*managertest.Status); ok {
		if eb, ok := out.(*api.ErrorBody); ok {
			*eb = st.Body
		}
		return st.Code
	}
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return 200
}

// must is call that fails the test on a non-2xx answer.
func (e *env) must(key, method, path string, body, out any) {
	e.t.Helper()
	var eb api.ErrorBody
	if out == nil {
		out = &eb
	}
	if code := e.call(key, method, path, body, out); code >= 300 {
		e.t.Fatalf("%s %s = %d %+v", method, path, code, eb)
	}
}

func (e *env) token(key string, req api.TokenRequest) string {
	e.t.Helper()
	var tok api.EnrollmentToken
	e.must(key, "POST", "/api/v1/tokens", req, &tok)
	return tok.Token
}

func (e *env) agent(token, machine string) *managertest.Agent {
	e.t.Helper()
	a, err := managertest.EnrollAgent(context.Background(), e.m.URL(), e.m.CAPEM(), token, api.HostInfo{Hostname: "host-" + machine, MachineID: machine, OS: "debian"})
	if err != nil {
		e.t.Fatalf("enrol: %v", err)
	}
	return a
}

// tenant creates a tenant and a key for it.
func (e *env) tenant(name string) (string, string) {
	e.t.Helper()
	var t api.Tenant
	e.must(e.admin, "POST", "/api/v1/tenants", api.TenantRequest{Name: name}, &t)
	var k api.APIKey
	e.must(e.admin, "POST", "/api/v1/apikeys", api.APIKeyRequest{Name: name + "-key", TenantID: t.ID}, &k)
	return t.ID, k.Key
}

func statusOf(err error) int {
	if st, ok := err.(*managertest.Status); ok {
		return st.Code
	}
	if err == nil {
		return 200
	}
	return -1
}
