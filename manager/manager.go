// Package manager is mamori's server: it enrols agents through its built-in
// CA, serves their mTLS heartbeats, policies, rule packs and event uploads,
// and the public REST API (/api/v1, API keys) with which operators and
// automation manage tenants, computers, policies, rule packs, events,
// alerts and notifications. State lives in manager/store (SQLite or
// PostgreSQL).
package manager

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/ca"
	"github.com/mamori-sec/mamori/manager/notify"
	"github.com/mamori-sec/mamori/manager/store"
	"github.com/mamori-sec/mamori/rulepack"
)

// Config configures a manager. Zero values get the defaults noted.
type Config struct {
	DataDir string // default ./mamori-data
	DB      string // "" (SQLite in DataDir), "sqlite:///path", a path, or "postgres://…"
	Listen  string // default 127.0.0.1:8443; port 0 picks a free one
	// Hostnames are extra names and IPs for the server certificate
	// (localhost, 127.0.0.1 and the host name are always in).
	Hostnames []string
	// TrustedRulePackKeys are extra ed25519 public keys (base64) whose rule
	// packs are accepted besides the manager's own.
	TrustedRulePackKeys []string
	// CertValidity is the agents' client certificate lifetime (30 days).
	CertValidity time.Duration
	// MaxWait caps a heartbeat long-poll (60s).
	MaxWait time.Duration
	// JobInterval is how often background jobs run (30s).
	JobInterval time.Duration
	// DefaultPolicyModules seed the "default" policy of new tenants.
	DefaultPolicyModules api.PolicyModules
	// DisableRulePackURLs refuses imports by URL: with them on, the manager
	// makes the outbound requests an API user names.
	DisableRulePackURLs bool
	// Version is the product version for notification headers.
	Version string
	// NotifyBurst and NotifyWindow cap each notifier's notifications per
	// alert rule: at most NotifyBurst per NotifyWindow (10 per minute),
	// the rest summed up in one notification when the window closes.
	// A negative NotifyBurst turns the cap off.
	NotifyBurst  int
	NotifyWindow time.Duration
}

// Manager is a running manager.
type Manager struct {
	cfg           Config
	log           *slog.Logger
	store         *store.Store
	ca            *ca.CA
	packKey       ed25519.PrivateKey
	trusted       []ed25519.PublicKey
	hub           *hub
	metrics       *metrics
	ln            net.Listener
	srv           *http.Server
	defaultTenant string
	handler       http.Handler
	dispatcher    *notify.Dispatcher
	notifier      *notify.Service
	remembered    sync.Map // tenant/version of effective policies stored
	hbw           *hbWriter
	policies      policyCache
}

// DefaultTenant is the name of the tenant a fresh manager creates.
const DefaultTenant = "default"

// New opens the store, loads or creates the CA and the rule-pack signing
// key, makes sure the default tenant exists and binds the listener (so
// URL is known before Run).
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Manager, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "mamori-data"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8443"
	}
	if cfg.CertValidity <= 0 {
		cfg.CertValidity = 30 * 24 * time.Hour
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	if cfg.JobInterval <= 0 {
		cfg.JobInterval = 30 * time.Second
	}
	if cfg.NotifyWindow <= 0 {
		cfg.NotifyWindow = time.Minute
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	m := &Manager{cfg: cfg, log: log, hub: newHub()}
	var err error
	m.ca, err = ca.LoadOrCreate(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	m.packKey, err = rulepack.LoadOrCreateKey(filepath.Join(cfg.DataDir, "rulepack.key"))
	if err != nil {
		return nil, err
	}
	m.trusted = []ed25519.PublicKey{m.packKey.Public().(ed25519.PublicKey)}
	for _, k := range cfg.TrustedRulePackKeys {
		pk, err := rulepack.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trusted rule pack key: %w", err)
		}
		m.trusted = append(m.trusted, pk)
	}
	m.store, err = store.Open(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	m.metrics = newMetrics()
	m.store.Observe = m.metrics.observeDB
	t, err := m.ensureTenant(ctx, DefaultTenant)
	if err != nil {
		m.store.Close()
		return nil, err
	}
	m.defaultTenant = t.ID
	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, cfg.Hostnames...)
	if hn, err := os.Hostname(); err == nil {
		hosts = append(hosts, hn)
	}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		hosts = append(hosts, h)
	}
	srvCert, err := m.ca.ServerCert(hosts)
	if err != nil {
		m.store.Close()
		return nil, err
	}
	m.hbw = newHBWriter(m.store, log, 250*time.Millisecond)
	m.dispatcher = notify.NewDispatcher(notify.DispatcherConfig{Logger: log})
	m.notifier = notify.NewService(m.dispatcher, notify.Options{ProductVersion: cfg.Version,
		Throttle: notify.ThrottleConfig{Burst: cfg.NotifyBurst, Window: cfg.NotifyWindow}})
	m.metrics.notifyQueue = m.dispatcher.QueueDepth
	m.metrics.notifySuppressed = m.notifier.Suppressed
	m.metrics.notifySummaries = m.notifier.Summaries
	m.handler = m.routes()
	m.srv = &http.Server{
		Handler: m.handler,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{srvCert},
			// Agents present their certificate; API clients and enrolling
			// agents have none. Verified here, mapped to a computer later.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  m.ca.Pool(),
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      cfg.MaxWait + time.Minute,
		// Longer than any heartbeat interval, so an agent's kept-alive
		// connection is not closed under a request it is sending.
		IdleTimeout: 5 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	m.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		m.store.Close()
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	return m, nil
}

func (m *Manager) ensureTenant(ctx context.Context, name string) (api.Tenant, error) {
	return EnsureTenant(ctx, m.store, name, m.cfg.DefaultPolicyModules)
}

// createTenant makes a tenant with its root "default" policy.
func (m *Manager) createTenant(ctx context.Context, name string) (api.Tenant, error) {
	return CreateTenant(ctx, m.store, name, m.cfg.DefaultPolicyModules)
}

// CreateTenant makes a tenant with its root "default" policy (modules seed
// it). The CLI uses it on a store without a running manager.
func CreateTenant(ctx context.Context, st *store.Store, name string, modules api.PolicyModules) (api.Tenant, error) {
	t, err := st.CreateTenant(ctx, name)
	if err != nil {
		return t, err
	}
	_, err = st.PutPolicy(ctx, t.ID, api.Policy{Name: "default", Description: "root policy", Modules: modules})
	if err != nil {
		return t, fmt.Errorf("creating default policy: %w", err)
	}
	return t, nil
}

// EnsureTenant returns the tenant called name, creating it when missing.
func EnsureTenant(ctx context.Context, st *store.Store, name string, modules api.PolicyModules) (api.Tenant, error) {
	t, err := st.TenantByName(ctx, name)
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return t, fmt.Errorf("reading tenant: %w", err)
	}
	t, err = CreateTenant(ctx, st, name, modules)
	if errors.Is(err, store.ErrConflict) { // another manager node made it first
		return st.TenantByName(ctx, name)
	}
	return t, err
}

// Run serves until ctx is done, then shuts down gracefully and closes the
// store.
func (m *Manager) Run(ctx context.Context) error {
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.runJobs(jobsCtx) }()
	go func() { defer wg.Done(); m.hbw.run(jobsCtx) }()
	go func() { defer wg.Done(); m.flushNotifications(jobsCtx) }()
	errc := make(chan error, 1)
	go func() { errc <- m.srv.ServeTLS(m.ln, "", "") }()
	m.log.Info("manager listening", "url", m.URL(), "db", m.store.Dialect())
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m.hub.closeAll()
		_ = m.srv.Shutdown(sctx)
		cancel()
	case err = <-errc:
	}
	stopJobs()
	wg.Wait()
	// Summaries of open throttle windows go out now, not never.
	m.notifier.FlushAll()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = m.dispatcher.Close(dctx)
	cancel()
	m.store.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// URL is the manager's base URL (https).
func (m *Manager) URL() string {
	addr := m.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// CAPEM is the CA certificate clients must trust.
func (m *Manager) CAPEM() []byte { return m.ca.PEM() }

// DefaultTenantID is the ID of the "default" tenant.
func (m *Manager) DefaultTenantID() string { return m.defaultTenant }

// DataDir is the manager's data directory.
func (m *Manager) DataDir() string { return m.cfg.DataDir }

// Store exposes the store (tests, the all-in-one command).
func (m *Manager) Store() *store.Store { return m.store }

// Handler is the HTTP handler (for in-process tests).
func (m *Manager) Handler() http.Handler { return m.handler }

// RulePackPublicKey is the manager's own rule-pack signing key (base64).
func (m *Manager) RulePackPublicKey() string {
	return rulepack.EncodePublicKey(m.packKey.Public().(ed25519.PublicKey))
}

// BootstrapAdmin creates the system admin API key of the default tenant
// once. Later calls return created=false and no key (only a hash is kept).
func (m *Manager) BootstrapAdmin(ctx context.Context) (apiKey string, created bool, err error) {
	keys, err := m.store.APIKeys(ctx, m.defaultTenant)
	if err != nil {
		return "", false, err
	}
	for _, k := range keys {
		if k.SystemAdmin && k.Name == "admin" {
			return "", false, nil
		}
	}
	k, err := m.store.CreateAPIKey(ctx, m.defaultTenant, "admin", true)
	if err != nil {
		return "", false, err
	}
	_ = m.store.Audit(ctx, api.AuditEntry{TenantID: m.defaultTenant, Actor: "system", Action: "apikey.create", ObjectType: "apikey", ObjectID: k.ID})
	return k.Key, true, nil
}

// TokenOption adjusts a token made by CreateEnrollmentToken.
type TokenOption func(*api.TokenRequest, *time.Duration)

// WithTTL sets a token's lifetime (default 24h).
func WithTTL(d time.Duration) TokenOption {
	return func(_ *api.TokenRequest, ttl *time.Duration) { *ttl = d }
}

// WithMaxUses sets how many agents may enrol with the token (default 1).
func WithMaxUses(n int) TokenOption {
	return func(r *api.TokenRequest, _ *time.Duration) { r.MaxUses = n }
}

// WithPolicy, WithGroup and WithTags set what enrolled computers get.
func WithPolicy(id string) TokenOption {
	return func(r *api.TokenRequest, _ *time.Duration) { r.PolicyID = id }
}

// WithGroup sets the group of computers enrolled with the token.
func WithGroup(g string) TokenOption {
	return func(r *api.TokenRequest, _ *time.Duration) { r.Group = g }
}

// WithTags sets the tags of computers enrolled with the token.
func WithTags(t ...string) TokenOption {
	return func(r *api.TokenRequest, _ *time.Duration) { r.Tags = t }
}

// CreateEnrollmentToken makes a token for tenantID ("" = default tenant).
func (m *Manager) CreateEnrollmentToken(ctx context.Context, tenantID string, opts ...TokenOption) (string, error) {
	if tenantID == "" {
		tenantID = m.defaultTenant
	}
	req, ttl := api.TokenRequest{}, 24*time.Hour
	for _, o := range opts {
		o(&req, &ttl)
	}
	t, err := m.store.CreateToken(ctx, tenantID, req, ttl)
	if err != nil {
		return "", err
	}
	_ = m.store.Audit(ctx, api.AuditEntry{TenantID: tenantID, Actor: "system", Action: "token.create", ObjectType: "token", ObjectID: t.ID})
	return t.Token, nil
}
