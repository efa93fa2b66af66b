package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mamori-sec/mamori/agent/budget"
	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/identity"
	"github.com/mamori-sec/mamori/agent/outbox"
	"github.com/mamori-sec/mamori/agent/selfprotect"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/response"
	"github.com/mamori-sec/mamori/rulepack"
)

// DefaultDataDir is where the agent keeps its state when not told otherwise.
const DefaultDataDir = "/var/lib/mamori/agent"

// Config is the agent's local configuration. Everything else comes from the
// manager's policy.
type Config struct {
	DataDir string
	// Modules builds the modules; callers pass modules.All() (the agent
	// package cannot import agent/modules, which imports it).
	Modules map[string]func(Env) Module
	Root    string // filesystem root handed to modules; "/" by default
	Version string // agent version reported to the manager
	// Host overrides host detection (tests; clone simulations).
	Host func() api.HostInfo
	// MetricsListen, when set, serves Prometheus metrics there (loopback).
	MetricsListen string
	// WatchFiles are extra files (configuration) whose changes are
	// reported; the agent's own binary and identity files are always
	// watched.
	WatchFiles []string

	// Tuning, mainly for tests; zero values mean the defaults.
	HeartbeatWait  time.Duration // long-poll wait; default: the heartbeat interval
	RetryMin       time.Duration // first back-off after a failure (default 1 s)
	RetryMax       time.Duration // back-off cap (default 5 min)
	WatchInterval  time.Duration // self-protection poll (default 30 s)
	StatusInterval time.Duration // status file refresh (default 5 s)
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.WatchInterval <= 0 {
		c.WatchInterval = 30 * time.Second
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 5 * time.Second
	}
	if c.Host == nil {
		// The running machine, whatever Root is: a re-rooted agent is
		// still this computer, not a clone of the image it looks at.
		ver := c.Version
		c.Host = func() api.HostInfo { return identity.Host(ver) }
	}
}

// Agent is the runtime: modules, outbox, manager link.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	ob       *outbox.Outbox
	throttle *budget.Throttler
	runners  map[string]*runner
	names    []string
	blocker  *blockerRef
	host     api.HostInfo
	wake     chan struct{} // an event was appended
	metrics  *metrics
	started  atomic.Bool

	mu           sync.Mutex
	cl           *client.Client
	id           client.Identity
	keys         []ed25519.PublicKey
	policy       *api.EffectivePolicy
	packs        map[string]activePack
	policyErr    string
	lastContact  time.Time
	linkErr      string
	skew         float64
	heartbeat    time.Duration
	doneCommands map[string]bool
	refused      map[string]error  // "name/version" of packs that failed verification
	reported     map[string]string // key → reason last reported as an event
	metricsAddr  string
}

// New prepares an agent from an enrolled data directory: it fixes the data
// directory's permissions, opens the outbox, builds the modules and loads
// the cached policy and rule packs. It talks to nobody; Run does.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	if fixed, err := selfprotect.Harden(cfg.DataDir); err != nil {
		log.Warn("hardening data dir", "err", err)
	} else if len(fixed) > 0 {
		log.Warn("data dir permissions were too open; fixed", "files", len(fixed), "first", fixed[0])
	}
	cl, err := client.Load(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("loading identity from %s: %w", cfg.DataDir, err)
	}
	a := &Agent{
		cfg: cfg, log: log, cl: cl, id: cl.Identity(), runners: map[string]*runner{},
		blocker: &blockerRef{}, wake: make(chan struct{}, 1), heartbeat: 60 * time.Second,
		doneCommands: map[string]bool{}, packs: map[string]activePack{}, refused: map[string]error{}, reported: map[string]string{},
	}
	if err := a.loadKeys(); err != nil {
		return nil, err
	}
	a.host = cfg.Host()
	if p, err := loadCachedPolicy(cfg.DataDir); err != nil {
		log.Warn("cached policy unreadable; waiting for the manager", "err", err)
	} else {
		a.policy = p
	}
	if a.packs, err = loadActivePacks(a.packsDir()); err != nil {
		log.Warn("cached rule packs unreadable", "err", err)
	}
	obOpts := outbox.Options{Logger: log.With("component", "outbox")}
	if a.policy != nil {
		obOpts.MaxBytes, obOpts.Overflow = a.policy.Outbox.MaxBytes, a.policy.Outbox.Overflow
		if a.policy.HeartbeatSeconds > 0 {
			a.heartbeat = heartbeatInterval(a.policy.HeartbeatSeconds)
		}
	} else if a.id.HeartbeatSeconds > 0 {
		a.heartbeat = heartbeatInterval(a.id.HeartbeatSeconds)
	}
	if a.ob, err = outbox.Open(filepath.Join(cfg.DataDir, "outbox"), obOpts); err != nil {
		// A bad overflow value in a cached policy must not keep the agent
		// down: fall back to the defaults.
		obOpts.MaxBytes, obOpts.Overflow = 0, ""
		if a.ob, err = outbox.Open(filepath.Join(cfg.DataDir, "outbox"), obOpts); err != nil {
			return nil, fmt.Errorf("opening outbox: %w", err)
		}
	}
	if r := a.ob.Recovery(); r.TruncatedBytes > 0 || r.CursorReset {
		log.Warn("outbox recovered after an unclean stop", "records", r.Records, "truncated_bytes", r.TruncatedBytes, "cursor_reset", r.CursorReset)
	}
	var b Budget
	if a.policy != nil {
		b = Budget{CPUPercent: a.policy.Budget.CPUPercent, IdleIO: a.policy.Budget.IdleIO}
	}
	a.throttle = budget.New(b.CPUPercent, b.IdleIO)
	a.buildModules()
	a.metrics = newMetrics(a)
	return a, nil
}

func (a *Agent) loadKeys() error {
	a.keys = a.keys[:0]
	for i, k := range a.id.RulePackKeys {
		pk, err := rulepack.ParsePublicKey(k)
		if err != nil {
			return fmt.Errorf("loading identity: field rulepack_keys[%d]: %w", i, err)
		}
		a.keys = append(a.keys, pk)
	}
	return nil
}

// blockerRef lets every module hold the firewall's Blocker although the
// firewall module is built in the same pass.
type blockerRef struct{ b response.Blocker }

func (r *blockerRef) get() response.Blocker {
	if r.b == nil {
		return response.Discard{}
	}
	return r.b
}
func (r *blockerRef) Block(ctx context.Context, b response.Block) error {
	return r.get().Block(ctx, b)
}
func (r *blockerRef) Unblock(ctx context.Context, p netip.Prefix) error {
	return r.get().Unblock(ctx, p)
}

func (a *Agent) buildModules() {
	for name := range a.cfg.Modules {
		a.names = append(a.names, name)
	}
	sort.Strings(a.names)
	for _, name := range a.names {
		dir := filepath.Join(a.cfg.DataDir, "modules", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			a.log.Warn("creating module data dir", "module", name, "err", err)
		}
		env := Env{
			Logger:   a.log.With("module", name),
			DataDir:  dir,
			Hostname: a.host.Hostname,
			Root:     a.cfg.Root,
			Blocker:  a.blocker,
			Throttle: a.throttle.Throttle,
		}
		m := a.cfg.Modules[name](env)
		if bl, ok := m.(response.Blocker); ok && name == "firewall" {
			a.blocker.b = bl
		}
		r := newRunner(name, m, a.emitter(name))
		r.note = a.moduleNote
		a.runners[name] = r
	}
}

// emitter returns the emit function for one module: fill the event's
// identity and put it in the outbox. A failed append (disk error) is logged
// and counted; the module cannot do better.
func (a *Agent) emitter(module string) func(event.Event) {
	return func(e event.Event) {
		e.Fill()
		e.Module = module
		a.stamp(&e)
		if err := a.ob.Append(e); err != nil {
			a.log.Error("queueing event", "module", module, "kind", e.Kind, "err", err)
			a.metrics.appendErrors.Add(1)
			return
		}
		a.metrics.countEvent(module)
		a.kick()
	}
}

func (a *Agent) stamp(e *event.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Host == "" {
		e.Host = a.host.Hostname
	}
	e.ComputerID = a.id.ComputerID
}

// report queues an event about the agent itself.
func (a *Agent) report(kind event.Kind, sev event.Severity, msg string, fields map[string]string) {
	e := event.Event{Kind: kind, Severity: sev, Module: "agent", Message: msg, Fields: fields}
	e.Fill()
	a.stamp(&e)
	if err := a.ob.Append(e); err != nil {
		a.log.Error("queueing agent event", "kind", kind, "err", err)
		return
	}
	a.kick()
}

func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) moduleNote(name string, st ModuleStatus, err error) {
	if err == nil {
		// A transition to unavailable is worth one event: the operator sees
		// which layer is missing on which host, and why.
		if st.State == StateUnavailable && a.firstReport(name, st.Reason) {
			a.report(event.KindAgentModuleState, event.SeverityLow,
				fmt.Sprintf("module %s unavailable on this host: %s", name, st.Reason),
				map[string]string{"module_name": name, "state": string(st.State), "reason": st.Reason})
		}
		return
	}
	a.report(event.KindAgentModuleState, event.SeverityMedium,
		fmt.Sprintf("module %s failed and is restarted with back-off: %v", name, err),
		map[string]string{"module_name": name, "state": string(st.State)})
}

// Run applies the cached policy at once (protection resumes with the
// manager unreachable), then heartbeats, uploads events and watches the
// agent's own files until ctx ends. It returns nil on a clean stop. An
// Agent runs once: the outbox is closed when Run returns.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice (build a new Agent with New)")
	}
	a.mu.Lock()
	p := a.policy
	a.mu.Unlock()
	if p != nil {
		a.applyModules(ctx, p)
	} else {
		// No policy yet: modules stay off until the manager sends one.
		for _, r := range a.runners {
			r.setState(StateDisabled, "no policy received yet")
		}
	}
	var wg sync.WaitGroup
	loops := []func(context.Context){a.heartbeatLoop, a.uploadLoop, a.watchLoop, a.statusLoop}
	if a.cfg.MetricsListen != "" {
		loops = append(loops, a.metricsLoop)
	}
	for _, f := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	<-ctx.Done()
	wg.Wait()
	// Modules stop in parallel: each may take up to stopTimeout.
	var sw sync.WaitGroup
	for _, n := range a.names {
		sw.Add(1)
		go func() { defer sw.Done(); a.runners[n].stop() }()
	}
	sw.Wait()
	a.writeStatus()
	a.mu.Lock()
	a.cl.Close()
	a.mu.Unlock()
	if err := a.ob.Close(); err != nil {
		return fmt.Errorf("closing outbox: %w", err)
	}
	return nil
}

// Emit queues an event from outside the modules (the all-in-one command).
func (a *Agent) Emit(e event.Event) error {
	e.Fill()
	a.stamp(&e)
	if err := a.ob.Append(e); err != nil {
		return err
	}
	a.kick()
	return nil
}

var errStopped = errors.New("stopped")

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errStopped
	case <-t.C:
		return nil
	}
}

// firstReport reports whether reason is news for key (a module name, or
// an agent-level condition), so a module that stays unavailable across
// policy changes, or a failing re-enrolment, is reported once.
func (a *Agent) firstReport(key, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reported[key] == reason {
		return false
	}
	a.reported[key] = reason
	return true
}
