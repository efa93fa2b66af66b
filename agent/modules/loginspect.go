package modules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/logs"
	"github.com/mamori-sec/mamori/logs/decode"
	"github.com/mamori-sec/mamori/logs/sigma"
)

// logInspectSettings is the loginspect policy section, for example:
//
//	{
//	  "sources": {"files": ["/var/log/auth.log", "/var/log/nginx/access.log*"], "journal": true,
//	              "journal_args": ["-u", "ssh"]},
//	  "thresholds": {"mamori_ssh_bruteforce": {"count": 6, "timespan": "10m"}},
//	  "disabled_rules": ["mamori_web_not_found"],
//	  "response": true,
//	  "timezone": "Asia/Tokyo",
//	  "decoders": [{"name": "myapp", "program": "myapp", "regex": "denied (?P<source__ip>\\S+)"}]
//	}
//
// Rules are the built-in pack plus the rule-pack files of the policy
// (ModuleSpec.RuleFiles); read positions and the journal cursor are kept in
// the module's DataDir.
type logInspectSettings struct {
	Sources logs.Sources `json:"sources"`
	// Builtin enables the built-in rule pack (default true).
	Builtin *bool `json:"builtin_rules,omitempty"`
	// DisabledRules are rule IDs or names that must not alert.
	DisabledRules []string `json:"disabled_rules,omitempty"`
	// Thresholds override correlation rules, by rule name or ID.
	Thresholds map[string]threshold `json:"thresholds,omitempty"`
	// Response allows rules to ask the firewall to block (default true).
	Response *bool `json:"response,omitempty"`
	// Timezone of timestamps without one (default: the host's).
	Timezone string              `json:"timezone,omitempty"`
	Decoders []decode.CustomSpec `json:"decoders,omitempty"`
}

type threshold struct {
	Count    int    `json:"count,omitempty"`
	Timespan string `json:"timespan,omitempty"`
}

// logInspect adapts the logs engine to the agent.
type logInspect struct {
	env agent.Env

	mu      sync.Mutex
	cfg     *liConfig
	changed chan struct{}
	st      agent.ModuleStatus
	eng     *logs.Engine
}

type liConfig struct {
	enabled  bool
	settings logInspectSettings
	set      *sigma.Set
	decoders []*decode.Custom
	loc      *time.Location
	disabled map[string]bool
	skipped  int
}

var _ agent.Module = (*logInspect)(nil)

func newLogInspect(env agent.Env) agent.Module {
	return &logInspect{env: env, changed: make(chan struct{}, 1),
		st: agent.ModuleStatus{Name: "loginspect", State: agent.StateStopped, Since: time.Now()}}
}

func (m *logInspect) Name() string { return "loginspect" }

// Configure decodes the section strictly, loads the built-in pack and the
// rule-pack files, and swaps the new configuration in; on error the old
// one stays.
func (m *logInspect) Configure(ctx context.Context, spec agent.ModuleSpec) error {
	var s logInspectSettings
	if len(spec.Settings) > 0 {
		dec := json.NewDecoder(bytes.NewReader(spec.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return fmt.Errorf("loginspect: decoding settings: %w", err)
		}
	}
	if len(s.Sources.Files) == 0 && !s.Sources.Journal {
		s.Sources.Files = []string{"/var/log/auth.log", "/var/log/secure", "/var/log/nginx/access.log", "/var/log/apache2/access.log"}
	}
	if root := m.env.Root; root != "" && root != "/" {
		for i, f := range s.Sources.Files {
			s.Sources.Files[i] = filepath.Join(root, f)
		}
	}
	builtin := s.Builtin == nil || *s.Builtin
	set, err := logs.LoadRules(spec.RuleFiles, !builtin, false)
	if err != nil {
		return fmt.Errorf("loginspect: %w", err)
	}
	for ref, th := range s.Thresholds {
		var d time.Duration
		if th.Timespan != "" {
			if d, err = time.ParseDuration(th.Timespan); err != nil {
				return fmt.Errorf("loginspect: thresholds.%s.timespan: %w", ref, err)
			}
		}
		if err := set.Override(ref, th.Count, d); err != nil {
			return fmt.Errorf("loginspect: thresholds: %w", err)
		}
	}
	c := &liConfig{enabled: spec.Enabled, settings: s, set: set, loc: time.Local, disabled: map[string]bool{}, skipped: len(set.Errors)}
	for _, r := range s.DisabledRules {
		if set.Lookup(r) == nil {
			return fmt.Errorf("loginspect: disabled_rules: no rule %q", r)
		}
		c.disabled[r] = true
	}
	if s.Timezone != "" {
		if c.loc, err = time.LoadLocation(s.Timezone); err != nil {
			return fmt.Errorf("loginspect: timezone: %w", err)
		}
	}
	for i, ds := range s.Decoders {
		d, err := decode.CompileCustom(ds)
		if err != nil {
			return fmt.Errorf("loginspect: decoders[%d]: %w", i, err)
		}
		c.decoders = append(c.decoders, d)
	}
	m.mu.Lock()
	m.cfg = c
	loaded, _, _ := set.Stats()
	m.st.RuleCount = loaded
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

// Run follows the configured sources; a new configuration restarts the
// engine (positions persist in DataDir, so nothing is lost or repeated).
func (m *logInspect) Run(ctx context.Context, emit func(event.Event)) error {
	for {
		m.mu.Lock()
		c := m.cfg
		m.mu.Unlock()
		if c == nil || !c.enabled {
			m.setState(agent.StateDisabled, "")
			select {
			case <-ctx.Done():
				m.setState(agent.StateStopped, "")
				return nil
			case <-m.changed:
				continue
			}
		}
		runCtx, cancel := context.WithCancel(ctx)
		blocker := m.env.Blocker
		if c.settings.Response != nil && !*c.settings.Response {
			blocker = nil
		}
		eng := logs.New(runCtx, logs.Config{Rules: c.set, Location: c.loc, Decoders: c.decoders, Live: true,
			Blocker: blocker, Module: "loginspect", Host: m.env.Hostname, Logger: m.env.Logger, DisabledRules: c.disabled}, emit)
		m.mu.Lock()
		m.eng = eng
		m.mu.Unlock()
		m.setState(agent.StateRunning, "")
		done := make(chan error, 1)
		go func() { done <- eng.Run(runCtx, c.settings.Sources, m.env.DataDir, nil) }()
		select {
		case <-ctx.Done():
			cancel()
			err := <-done
			m.setState(agent.StateStopped, "")
			return err
		case <-m.changed:
			cancel()
			<-done
		case err := <-done:
			cancel()
			if err != nil {
				m.setState(agent.StateFailed, err.Error())
				return fmt.Errorf("loginspect: %w", err)
			}
			return nil
		}
	}
}

func (m *logInspect) setState(s agent.State, lastErr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.State != s {
		m.st.State, m.st.Since = s, time.Now()
	}
	m.st.LastError = lastErr
}

// Status reports state, rule count and the engine's counters.
func (m *logInspect) Status() agent.ModuleStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	if m.eng != nil {
		s := m.eng.Stats()
		st.Counters = map[string]int64{"lines": s.Lines, "decoded": s.Decoded, "undecoded": s.Undecoded, "alerts": s.Alerts,
			"blocks": s.Blocks, "block_errors": s.BlockErrors, "invalid_utf8": s.InvalidUTF8, "future_timestamps": s.FutureTime}
	}
	if m.cfg != nil {
		if st.Counters == nil {
			st.Counters = map[string]int64{}
		}
		st.Counters["rules_skipped"] = int64(m.cfg.skipped)
		st.Mode = "files"
		if m.cfg.settings.Sources.Journal {
			st.Mode = "files+journald"
		}
	}
	return st
}
