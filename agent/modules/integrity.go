package modules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/integrity"
	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
	"github.com/mamori-sec/mamori/integrity/watch"
	builtin "github.com/mamori-sec/mamori/rules/integrity"
)

// integritySettings is the module's policy section.
type integritySettings struct {
	// Builtin includes the built-in Linux policy before the rule files;
	// default true.
	Builtin *bool `json:"builtin,omitempty"`
	// Schedule is the interval between full checks ("6h"); "" or "0s"
	// means real-time only.
	Schedule string `json:"schedule,omitempty"`
	// Realtime turns real-time watching on; default true.
	Realtime *bool `json:"realtime,omitempty"`
	// TrustMetadata lets scheduled checks skip rehashing unchanged files.
	TrustMetadata bool `json:"trust_metadata,omitempty"`
	// RebuildBaseline: the manager sets a new value (any token) to ask
	// for the baseline to be rebuilt from the current state, once.
	RebuildBaseline string `json:"rebuild_baseline,omitempty"`
	Workers         int    `json:"workers,omitempty"`
}

type integrityConf struct {
	pol      *policy.Policy
	schedule time.Duration
	realtime bool
	trust    bool
	rebuild  string
	workers  int
	version  string
}

type integrityModule struct {
	env agent.Env

	mu       sync.Mutex
	conf     *integrityConf
	st       agent.ModuleStatus
	reload   chan struct{}
	counters map[string]int64
}

var _ agent.Module = (*integrityModule)(nil)

// newIntegrity builds the file integrity module.
func newIntegrity(env agent.Env) agent.Module {
	return &integrityModule{
		env:      env,
		reload:   make(chan struct{}, 1),
		counters: map[string]int64{},
		st:       agent.ModuleStatus{Name: "integrity", State: agent.StateStopped, Since: time.Now()},
	}
}

func (m *integrityModule) Name() string { return "integrity" }

// Configure decodes the settings strictly and loads the policy; on any
// error the running configuration stays.
func (m *integrityModule) Configure(_ context.Context, spec agent.ModuleSpec) error {
	var s integritySettings
	if len(bytes.TrimSpace(spec.Settings)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(spec.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return fmt.Errorf("decoding integrity settings: %w", err)
		}
	}
	c := &integrityConf{realtime: s.Realtime == nil || *s.Realtime, trust: s.TrustMetadata, rebuild: s.RebuildBaseline, workers: s.Workers, version: spec.PolicyVersion}
	if s.Schedule != "" {
		d, err := time.ParseDuration(s.Schedule)
		if err != nil || d < 0 {
			return fmt.Errorf("integrity settings: field schedule: %q is not a duration", s.Schedule)
		}
		c.schedule = d
	}
	files := map[string][]byte{}
	var order []string
	if s.Builtin == nil || *s.Builtin {
		files[builtin.LinuxName] = builtin.Linux
		order = append(order, builtin.LinuxName)
	}
	for _, rf := range spec.RuleFiles {
		b, err := os.ReadFile(rf)
		if err != nil {
			return fmt.Errorf("reading integrity policy: %w", err)
		}
		files[rf] = b
		order = append(order, rf)
	}
	if len(order) == 0 {
		return errors.New("integrity settings: no policy (builtin is off and no rule files)")
	}
	pol, err := policy.ParseMany("agent", files, order, false)
	if err != nil {
		return fmt.Errorf("loading integrity policy: %w", err)
	}
	m.mu.Lock()
	m.conf = c
	m.st.RuleCount = len(pol.Rules)
	if len(pol.Warnings) > 0 {
		m.st.LastError = fmt.Sprintf("%d policy rules skipped: %v", len(pol.Warnings), pol.Warnings[0])
	}
	m.mu.Unlock()
	c.pol = pol
	select {
	case m.reload <- struct{}{}:
	default:
	}
	return nil
}

func (m *integrityModule) Status() agent.ModuleStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	st.Counters = map[string]int64{}
	for k, v := range m.counters {
		st.Counters[k] = v
	}
	return st
}

func (m *integrityModule) setState(s agent.State, mode, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.State != s {
		m.st.Since = time.Now()
	}
	m.st.State, m.st.Mode, m.st.Reason = s, mode, reason
}

func (m *integrityModule) count(k string, n int) {
	m.mu.Lock()
	m.counters[k] += int64(n)
	m.mu.Unlock()
}

// paths: the baseline lives in its own directory under the agent's data
// directory, the MAC key in the data directory itself (0600, root-only),
// so write access to the baseline directory cannot re-seal a forged
// baseline.
func (m *integrityModule) paths() (base, key, token string) {
	base = filepath.Join(m.env.DataDir, "integrity", "agent.fimdb")
	return base, filepath.Join(m.env.DataDir, "integrity.key"), base + ".rebuild"
}

// migrateLayout moves a baseline kept by an older agent (key beside the
// baseline in the data directory) to the current layout. The old key was
// written by the agent itself under its own root-only data directory, so
// it is carried over rather than dropping the baseline.
func (m *integrityModule) migrateLayout(base, key string) error {
	old := filepath.Join(m.env.DataDir, "agent.fimdb")
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	if _, err := os.Stat(base); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
		return fmt.Errorf("moving baseline: %w", err)
	}
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(baseline.LegacyKeyPath(old), key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("moving baseline key: %w", err)
		}
	}
	for _, suffix := range []string{"", ".rebuild", ".audit.jsonl"} {
		if err := os.Rename(old+suffix, base+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("moving baseline: %w", err)
		}
	}
	if m.env.Logger != nil {
		m.env.Logger.Info("integrity: moved the baseline apart from its key", "baseline", base, "key", key)
	}
	return nil
}

// Run applies the current configuration until ctx is done, restarting
// its work when Configure swaps a new one in.
func (m *integrityModule) Run(ctx context.Context, emit func(event.Event)) error {
	for {
		m.mu.Lock()
		c := m.conf
		m.mu.Unlock()
		if c == nil {
			return errors.New("integrity: Run before Configure")
		}
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- m.runConf(runCtx, c, emit) }()
		select {
		case <-ctx.Done():
			cancel()
			<-errc
			m.setState(agent.StateStopped, "", "")
			return nil
		case <-m.reload:
			cancel()
			<-errc
		case err := <-errc:
			cancel()
			if err != nil {
				m.mu.Lock()
				m.st.LastError = err.Error()
				m.mu.Unlock()
			}
			return err
		}
	}
}

func (m *integrityModule) runConf(ctx context.Context, c *integrityConf, emit func(event.Event)) error {
	m.setState(agent.StateStarting, "", "")
	basePath, keyPath, tokenPath := m.paths()
	if err := m.migrateLayout(basePath, keyPath); err != nil {
		return err
	}
	key, err := baseline.LoadOrCreateKey(keyPath)
	if err != nil {
		return err
	}
	cfg := integrity.Config{Policy: c.pol, Baseline: basePath, Key: key, Root: m.env.Root, Workers: c.workers, TrustMetadata: c.trust, Throttle: m.env.Throttle}
	prevToken, _ := os.ReadFile(tokenPath)
	_, statErr := os.Stat(basePath)
	rebuild := c.rebuild != "" && string(prevToken) != c.rebuild
	if errors.Is(statErr, fs.ErrNotExist) || rebuild {
		rep, err := integrity.Init(ctx, cfg)
		if err != nil {
			return fmt.Errorf("building baseline: %w", err)
		}
		via := "agent"
		if rebuild {
			via = "manager"
		}
		m.emitAll(rep, emit, integrity.AuditEvent(event.KindIntegrityBaselineInit, rep, basePath, nil, integrity.CurrentActor(via), m.env.Hostname))
		if rebuild {
			os.WriteFile(tokenPath, []byte(c.rebuild), 0o600)
		}
	}
	b, err := baseline.Load(basePath, key)
	if err != nil {
		// A tampered baseline is reported and never rebuilt silently:
		// the operator decides (rebuild_baseline).
		ev := event.Event{Kind: event.KindIntegrityError, Severity: event.SeverityHigh, Module: "integrity", Host: m.env.Hostname, Message: err.Error()}
		ev.Fill()
		emit(ev)
		return err
	}
	mode, health := "scheduled checks only", ""
	var wg sync.WaitGroup
	if c.realtime {
		w, err := watch.New(watch.Config{Policy: c.pol, Baseline: b, Root: m.env.Root, Host: m.env.Hostname})
		if err != nil {
			mode = "scheduled checks only (real time unavailable: " + err.Error() + ")"
		} else {
			mode = w.Mode()
			if mode == watch.ModeInotify {
				mode = "inotify (weaker: no process attribution)"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.Run(ctx, func(ch watch.Change) {
					m.count("realtime_changes", 1)
					emit(ch.Event(m.env.Hostname))
				})
			}()
			// A watch limit reached is a condition for the operator:
			// shown in status, not logged over and over.
			health = w.Health()
		}
	}
	m.setState(agent.StateRunning, mode, health)
	defer wg.Wait()
	if c.schedule <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(c.schedule)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rep, err := integrity.Check(ctx, cfg)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				m.mu.Lock()
				m.st.LastError = err.Error()
				m.mu.Unlock()
				continue
			}
			m.count("checks", 1)
			m.emitAll(rep, emit)
		}
	}
}

func (m *integrityModule) emitAll(rep *integrity.Report, emit func(event.Event), extra ...event.Event) {
	for _, e := range extra {
		emit(e)
	}
	for i := range rep.Findings {
		f := &rep.Findings[i]
		if f.What == integrity.Error {
			m.count("errors", 1)
		} else {
			m.count("changes", 1)
		}
		emit(f.Event(m.env.Hostname))
	}
}
