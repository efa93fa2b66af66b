package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent/testmanager"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/rulepack"
)

// fakeModule records what the supervisor does to it and emits on demand.
type fakeModule struct {
	name string
	env  Env

	mu        sync.Mutex
	specs     []ModuleSpec
	runs      int
	failRun   error // returned by Run at once when set
	panicRun  bool
	failConf  error
	emit      func(event.Event)
	commands  []api.Command
	ruleFiles map[string]string // path → content read at Configure
}

func (m *fakeModule) Name() string { return m.name }
func (m *fakeModule) Configure(_ context.Context, s ModuleSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failConf != nil {
		return m.failConf
	}
	var v map[string]any
	if len(s.Settings) > 0 {
		if err := json.Unmarshal(s.Settings, &v); err != nil {
			return fmt.Errorf("settings: %w", err)
		}
	}
	m.specs = append(m.specs, s)
	m.ruleFiles = map[string]string{}
	for _, f := range s.RuleFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		m.ruleFiles[f] = string(b)
	}
	return nil
}
func (m *fakeModule) Run(ctx context.Context, emit func(event.Event)) error {
	m.mu.Lock()
	m.runs++
	m.emit = emit
	fail, pan := m.failRun, m.panicRun
	m.mu.Unlock()
	if pan {
		panic("boom")
	}
	if fail != nil {
		return fail
	}
	<-ctx.Done()
	return nil
}
func (m *fakeModule) Status() ModuleStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return ModuleStatus{Name: m.name, Mode: "fake", RuleCount: len(m.ruleFiles)}
}
func (m *fakeModule) Command(_ context.Context, c api.Command) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commands = append(m.commands, c)
	return nil
}

func (m *fakeModule) lastSpec() (ModuleSpec, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.specs) == 0 {
		return ModuleSpec{}, 0
	}
	return m.specs[len(m.specs)-1], len(m.specs)
}

func (m *fakeModule) emitter() func(event.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.emit
}

var _ Module = (*fakeModule)(nil)
var _ Commander = (*fakeModule)(nil)

type harness struct {
	t    *testing.T
	m    *testmanager.Server
	dir  string
	mods map[string]*fakeModule
	host atomic.Pointer[api.HostInfo]
	wait time.Duration // long-poll wait; 20 s unless set
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	m, err := testmanager.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	h := &harness{t: t, m: m, dir: t.TempDir(), mods: map[string]*fakeModule{}}
	hi := api.HostInfo{Hostname: "web-1", MachineID: "machine-1"}
	h.host.Store(&hi)
	m.AddToken("tok", 10)
	if err := Enroll(context.Background(), EnrollOptions{ManagerURL: m.URL, Token: "tok", CAPEM: m.CAPEM, DataDir: h.dir, Host: &hi, KeepToken: true}); err != nil {
		t.Fatalf("Enroll = %v", err)
	}
	return h
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start builds an agent with fresh fake modules and runs it until the
// returned stop is called.
func (h *harness) start(names ...string) (*Agent, func()) {
	h.t.Helper()
	h.mods = map[string]*fakeModule{}
	factories := map[string]func(Env) Module{}
	for _, n := range names {
		factories[n] = func(env Env) Module {
			fm := &fakeModule{name: n, env: env}
			h.mods[n] = fm
			return fm
		}
	}
	a, err := New(Config{
		DataDir: h.dir, Modules: factories, Version: "test",
		Host:          func() api.HostInfo { return *h.host.Load() },
		HeartbeatWait: cmp.Or(h.wait, 20*time.Second), RetryMin: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		WatchInterval: 100 * time.Millisecond, StatusInterval: 100 * time.Millisecond,
	}, quiet())
	if err != nil {
		h.t.Fatalf("New = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			h.t.Fatal("Run did not return 10 s after cancel")
		}
	}
	h.t.Cleanup(stop)
	return a, stop
}

func eventually(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func policy(version string, mods map[string]api.ModulePolicy, packs ...api.RulePackRef) api.EffectivePolicy {
	return api.EffectivePolicy{Version: version, PolicyID: "p1", HeartbeatSeconds: 60, Modules: mods, RulePacks: packs}
}

func countKind(evs []event.Event, k event.Kind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func TestPolicyAppliedAndEventsDelivered(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true, Settings: json.RawMessage(`{"x":1}`)}}))
	a, _ := h.start("alpha", "beta")
	fm := h.mods["alpha"]
	eventually(t, "alpha configured with v1", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v1" })
	if s, _ := fm.lastSpec(); string(s.Settings) != `{"x":1}` || !s.Enabled {
		t.Fatalf("spec = %+v", s)
	}
	eventually(t, "alpha running", 5*time.Second, func() bool { return fm.emitter() != nil })
	emit := fm.emitter()
	for i := 0; i < 50; i++ {
		emit(event.Event{Kind: event.KindLogAlert, Severity: event.SeverityLow, Message: fmt.Sprint("hit ", i)})
	}
	eventually(t, "50 events at the manager", 10*time.Second, func() bool { return countKind(h.m.Events(), event.KindLogAlert) == 50 })
	for _, e := range h.m.Events() {
		if e.Kind == event.KindLogAlert && (e.Module != "alpha" || e.Host != "web-1" || e.ComputerID == "" || e.ID == "") {
			t.Fatalf("event not stamped: %+v", e)
		}
	}
	st := a.Status()
	byName := map[string]ModuleStatus{}
	for _, m := range st.Modules {
		byName[m.Name] = m
	}
	if byName["alpha"].State != StateRunning || byName["beta"].State != StateDisabled || st.PolicyVersion != "v1" {
		t.Fatalf("Status = %+v", st)
	}
	eventually(t, "status file", 5*time.Second, func() bool {
		s, err := ReadStatus(h.dir)
		return err == nil && s.PolicyVersion == "v1" && s.QueueDepth == 0
	})
}

func TestPolicyChangeReachesAgentWithinSeconds(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true}}))
	h.start("alpha")
	fm := h.mods["alpha"]
	eventually(t, "v1", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v1" })
	time.Sleep(200 * time.Millisecond) // the agent is now in its long poll
	start := time.Now()
	h.m.SetPolicy(policy("v2", map[string]api.ModulePolicy{"alpha": {Enabled: true, Settings: json.RawMessage(`{"y":2}`)}}))
	eventually(t, "v2 hot-applied", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v2" })
	t.Logf("policy change applied %v after the manager changed it", time.Since(start))
	fm.mu.Lock()
	runs := fm.runs
	fm.mu.Unlock()
	if runs != 1 {
		t.Errorf("module ran %d times; a reconfigure must not restart it", runs)
	}
}

func TestCommandsDispatchedAndAcked(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true}}))
	a, _ := h.start("alpha")
	eventually(t, "alpha configured", 5*time.Second, func() bool { _, n := h.mods["alpha"].lastSpec(); return n > 0 })
	id := a.Status().ComputerID
	time.Sleep(100 * time.Millisecond)
	h.m.Queue(id, api.Command{ID: "c1", Type: api.CommandScanNow, Args: map[string]string{"module": "alpha"}})
	h.m.Queue(id, api.Command{ID: "c2", Type: api.CommandScanNow, Args: map[string]string{"module": "nope"}})
	eventually(t, "two acks", 5*time.Second, func() bool { c, _ := h.m.Computer(id); return len(c.Acks) == 2 })
	c, _ := h.m.Computer(id)
	if !c.Acks["c1"].OK || c.Acks["c2"].OK || !strings.Contains(c.Acks["c2"].Error, "no module") {
		t.Fatalf("acks = %+v", c.Acks)
	}
	fm := h.mods["alpha"]
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if len(fm.commands) != 1 || fm.commands[0].ID != "c1" {
		t.Fatalf("module got commands %+v", fm.commands)
	}
}

func buildPack(t *testing.T, name, version string, key []byte, files ...rulepack.File) ([]byte, api.RulePackRef) {
	t.Helper()
	b, err := rulepack.Build(name, version, "", time.Now(), files, key)
	if err != nil {
		t.Fatal(err)
	}
	return b, api.RulePackRef{Name: name, Version: version}
}

func TestRulePacksVerifiedTamperedRefusedAndOfflineRestart(t *testing.T) {
	h := newHarness(t)
	good, ref1 := buildPack(t, "core", "1", h.m.PackKey,
		rulepack.File{Entry: rulepack.Entry{Module: "alpha", Path: "sigs/a.txt"}, Data: []byte("rule-one")},
		rulepack.File{Entry: rulepack.Entry{Module: "beta", Path: "other.txt"}, Data: []byte("not for alpha")})
	h.m.AddPack("core", "1", good)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true, RulePacks: []string{"core"}}}, ref1))
	_, stop := h.start("alpha")
	fm := h.mods["alpha"]
	eventually(t, "pack applied", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return len(s.RuleFiles) == 1 })
	fm.mu.Lock()
	for _, content := range fm.ruleFiles {
		if content != "rule-one" {
			t.Fatalf("rule file content %q", content)
		}
	}
	fm.mu.Unlock()

	// version 2 signed by a key the agent does not trust
	_, badKey, _ := rulepack.GenerateKey()
	bad, ref2 := buildPack(t, "core", "2", badKey, rulepack.File{Entry: rulepack.Entry{Module: "alpha", Path: "sigs/a.txt"}, Data: []byte("evil")})
	h.m.AddPack("core", "2", bad)
	h.m.SetPolicy(policy("v2", map[string]api.ModulePolicy{"alpha": {Enabled: true, RulePacks: []string{"core"}}}, ref2))
	eventually(t, "refusal reported", 10*time.Second, func() bool {
		for _, e := range h.m.Events() {
			if e.Kind == event.KindAgentRulePack && e.Fields["result"] == "refused" && e.Fields["version"] == "2" && e.Fields["active_version"] == "1" {
				return true
			}
		}
		return false
	})
	eventually(t, "v2 applied with the old pack", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v2" })
	fm.mu.Lock()
	for _, content := range fm.ruleFiles {
		if content != "rule-one" {
			t.Fatalf("after a tampered pack the module has %q, want the old rule-one", content)
		}
	}
	fm.mu.Unlock()
	stop()

	// restart with the manager gone: protection resumes from the cache
	h.m.Close()
	a2, _ := h.start("alpha")
	fm2 := h.mods["alpha"]
	eventually(t, "cached policy applied offline", 2*time.Second, func() bool {
		s, _ := fm2.lastSpec()
		return s.PolicyVersion == "v2" && len(s.RuleFiles) == 1
	})
	if st := a2.Status(); st.Modules[0].State != StateRunning {
		t.Fatalf("offline restart: module %+v", st.Modules[0])
	}
}

func TestModuleFailuresSupervised(t *testing.T) {
	old := restartMin
	restartMin = 20 * time.Millisecond
	defer func() { restartMin = old }()
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"panicky": {Enabled: true}, "absent": {Enabled: true}, "steady": {Enabled: true}}))
	factories := map[string]func(Env) Module{
		"panicky": func(Env) Module { return &fakeModule{name: "panicky", panicRun: true} },
		"absent":  func(Env) Module { return &fakeModule{name: "absent", failRun: Unavailable("needs CAP_SYS_ADMIN")} },
		"steady":  func(Env) Module { return &fakeModule{name: "steady"} },
	}
	a, err := New(Config{DataDir: h.dir, Modules: factories, Host: func() api.HostInfo { return *h.host.Load() }, RetryMin: 50 * time.Millisecond, HeartbeatWait: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	byName := func() map[string]ModuleStatus {
		out := map[string]ModuleStatus{}
		for _, m := range a.Status().Modules {
			out[m.Name] = m
		}
		return out
	}
	eventually(t, "panicky restarted several times", 10*time.Second, func() bool { return byName()["panicky"].Counters["restarts"] >= 3 })
	eventually(t, "states", 5*time.Second, func() bool {
		s := byName()
		return s["absent"].State == StateUnavailable && s["steady"].State == StateRunning
	})
	s := byName()
	if s["absent"].Reason != "needs CAP_SYS_ADMIN" || !strings.Contains(s["panicky"].LastError, "boom") {
		t.Fatalf("statuses = %+v", s)
	}
	absent := a.runners["absent"].mod.(*fakeModule)
	absent.mu.Lock()
	runs := absent.runs
	absent.mu.Unlock()
	if runs != 1 {
		t.Errorf("unavailable module was run %d times, want 1 (no restart loop)", runs)
	}
	eventually(t, "failure reported as an event", 10*time.Second, func() bool { return countKind(h.m.Events(), event.KindAgentModuleState) > 0 })
}

func TestBadReconfigureKeepsOldConfig(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true, Settings: json.RawMessage(`{"ok":true}`)}}))
	a, _ := h.start("alpha")
	fm := h.mods["alpha"]
	eventually(t, "v1", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v1" })
	fm.mu.Lock()
	fm.failConf = errors.New("field threshold: must be positive")
	fm.mu.Unlock()
	h.m.SetPolicy(policy("v2", map[string]api.ModulePolicy{"alpha": {Enabled: true, Settings: json.RawMessage(`{"threshold":-1}`)}}))
	eventually(t, "policy error reported", 10*time.Second, func() bool { return countKind(h.m.Events(), event.KindAgentPolicy) > 0 })
	if s, _ := fm.lastSpec(); s.PolicyVersion != "v1" {
		t.Fatalf("module config = %s, want v1 kept", s.PolicyVersion)
	}
	eventually(t, "status has the policy error", 5*time.Second, func() bool { return strings.Contains(a.Status().PolicyError, "must be positive") })
	st := a.Status()
	if st.Modules[0].State != StateRunning {
		t.Fatalf("Status = %+v", st)
	}
	eventually(t, "heartbeat carries the policy error", 10*time.Second, func() bool {
		c, _ := h.m.Computer(st.ComputerID)
		return strings.Contains(c.LastBeat.PolicyError, "must be positive")
	})
}

// TestEventsSurviveOutageAndRestart emits while the manager refuses
// uploads, stops the agent, brings the manager back and restarts the agent:
// every event arrives exactly once.
func TestEventsSurviveOutageAndRestart(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true}}))
	h.m.SetFailEvents(1 << 30)
	_, stop := h.start("alpha")
	fm := h.mods["alpha"]
	eventually(t, "running", 5*time.Second, func() bool { return fm.emitter() != nil })
	emit := fm.emitter()
	const n = 300
	for i := 0; i < n; i++ {
		emit(event.Event{Kind: event.KindIntegrityChange, Severity: event.SeverityMedium, Message: fmt.Sprint("change ", i)})
	}
	stop()
	if got := countKind(h.m.Events(), event.KindIntegrityChange); got != 0 {
		t.Fatalf("%d events delivered during the outage", got)
	}
	h.m.SetFailEvents(3) // a few more failures after the restart
	h.start("alpha")
	eventually(t, "all events after recovery", 20*time.Second, func() bool { return countKind(h.m.Events(), event.KindIntegrityChange) == n })
	time.Sleep(300 * time.Millisecond)
	if got := countKind(h.m.Events(), event.KindIntegrityChange); got != n {
		t.Fatalf("%d events stored, want exactly %d", got, n)
	}
}

func TestCloneReenrolsAsNewComputer(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{}))
	a, _ := h.start()
	first := a.Status().ComputerID
	eventually(t, "first heartbeat", 5*time.Second, func() bool { c, _ := h.m.Computer(first); return c.Beats > 0 })
	// the disk image is now booted on another machine
	h.host.Store(&api.HostInfo{Hostname: "web-2", MachineID: "machine-2"})
	h.m.SetPolicy(policy("v2", map[string]api.ModulePolicy{})) // end the long poll
	eventually(t, "re-enrolled", 10*time.Second, func() bool { return a.Status().ComputerID != first })
	second := a.Status().ComputerID
	eventually(t, "new computer heartbeats", 5*time.Second, func() bool { c, _ := h.m.Computer(second); return c.Beats > 0 })
	if c, _ := h.m.Computer(first); c.Host.MachineID != "machine-1" || c.Deactivated {
		t.Fatalf("original computer changed: %+v", c)
	}
	eventually(t, "identity event", 5*time.Second, func() bool { return countKind(h.m.Events(), event.KindAgentIdentity) > 0 })
}

func TestRenewalOnRequest(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{}))
	a, _ := h.start()
	id := a.Status().ComputerID
	eventually(t, "heartbeat", 5*time.Second, func() bool { c, _ := h.m.Computer(id); return c.Beats > 0 })
	before := a.Status().CertExpiry
	time.Sleep(1100 * time.Millisecond) // a later NotAfter
	h.m.RequestRenewal(id)
	eventually(t, "renewed", 10*time.Second, func() bool { c, _ := h.m.Computer(id); return len(c.Serials) == 2 })
	eventually(t, "new cert in use", 5*time.Second, func() bool { return a.Status().CertExpiry.After(before) })
}

func TestSelfProtectionReportsChange(t *testing.T) {
	h := newHarness(t)
	cfgFile := h.dir + "/../agent.conf"
	os.WriteFile(cfgFile, []byte("a=1\n"), 0o600)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{}))
	factories := map[string]func(Env) Module{}
	a, err := New(Config{DataDir: h.dir, Modules: factories, Host: func() api.HostInfo { return *h.host.Load() }, WatchFiles: []string{cfgFile}, WatchInterval: 50 * time.Millisecond, HeartbeatWait: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond)
	os.WriteFile(cfgFile, []byte("a=2\n"), 0o600)
	os.Chmod(filepath.Join(h.dir, "client.pem"), 0o644)
	eventually(t, "self-protection event", 10*time.Second, func() bool {
		for _, e := range h.m.Events() {
			if e.Kind == event.KindAgentSelfProtect && e.File != nil && strings.HasSuffix(e.File.Path, "agent.conf") {
				return true
			}
		}
		return false
	})
	eventually(t, "key file mode restored and reported", 10*time.Second, func() bool {
		fi, _ := os.Stat(filepath.Join(h.dir, "client.pem"))
		for _, e := range h.m.Events() {
			if e.Kind == event.KindAgentSelfProtect && strings.HasSuffix(e.Fields["path"], "client.pem") {
				return fi.Mode().Perm() == 0o600
			}
		}
		return false
	})
}

// TestOverflowCountedAndReported fills a small outbox while the manager
// refuses uploads: what arrives plus what the agent reports as dropped is
// exactly what was emitted.
func TestOverflowCountedAndReported(t *testing.T) {
	h := newHarness(t)
	p := policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true}})
	p.Outbox = api.OutboxPolicy{MaxBytes: 256 << 10, Overflow: "drop_oldest"}
	h.m.SetPolicy(p)
	h.m.SetFailEvents(1 << 30)
	a, _ := h.start("alpha")
	fm := h.mods["alpha"]
	eventually(t, "running with v1", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v1" && fm.emitter() != nil })
	emit := fm.emitter()
	const n = 3000
	for i := 0; i < n; i++ {
		emit(event.Event{Kind: event.KindLogAlert, Severity: event.SeverityLow, Message: fmt.Sprintf("line %d %s", i, strings.Repeat("x", 200))})
	}
	st := a.Status()
	if st.Dropped == 0 || st.QueueBytes > 256<<10 {
		t.Fatalf("after %d events into 256 KiB: dropped %d, queue %d bytes", n, st.Dropped, st.QueueBytes)
	}
	id := st.ComputerID
	p.Version = "v2" // ends the current long poll, as the next interval would
	h.m.SetPolicy(p)
	eventually(t, "heartbeat reports drops", 10*time.Second, func() bool { c, _ := h.m.Computer(id); return c.LastBeat.Dropped > 0 })
	h.m.SetFailEvents(0)
	var reported int
	eventually(t, "drop report and remaining events", 20*time.Second, func() bool {
		evs := h.m.Events()
		reported = 0
		for _, e := range evs {
			if e.Kind == event.KindAgentOutboxDrop {
				var k int
				fmt.Sscan(e.Fields["dropped"], &k)
				reported += k
			}
		}
		return reported > 0 && countKind(evs, event.KindLogAlert)+reported == n
	})
	t.Logf("%d delivered, %d dropped and reported", n-reported, reported)
}

func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true}}))
	a, err := New(Config{DataDir: h.dir, Modules: map[string]func(Env) Module{"alpha": func(Env) Module { return &fakeModule{name: "alpha"} }},
		Host: func() api.HostInfo { return *h.host.Load() }, MetricsListen: "127.0.0.1:0", HeartbeatWait: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "metrics listening and module running", 5*time.Second, func() bool {
		return a.MetricsAddr() != "" && a.Status().Modules[0].State == StateRunning
	})
	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`mamori_agent_module_up{module="alpha",state="running"} 1`, "mamori_agent_outbox_events", "mamori_agent_outbox_dropped_total 0", "process_resident_memory_bytes"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestRenewsByItselfNearExpiry(t *testing.T) {
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{}))
	// re-enrol with a certificate that is already in its last third
	h.m.SetCertExpiry(2 * time.Minute) // NotBefore is 5 min in the past
	h.dir = t.TempDir()
	hi := *h.host.Load()
	if err := Enroll(context.Background(), EnrollOptions{ManagerURL: h.m.URL, Token: "tok", CAPEM: h.m.CAPEM, DataDir: h.dir, Host: &hi}); err != nil {
		t.Fatal(err)
	}
	h.m.SetCertExpiry(24 * time.Hour)
	a, _ := h.start()
	id := a.Status().ComputerID
	eventually(t, "renewed without being asked", 10*time.Second, func() bool { c, _ := h.m.Computer(id); return len(c.Serials) == 2 })
}

// TestPackDownloadRetriedNextHeartbeat: a pack the manager cannot serve yet
// is fetched on a later heartbeat without a new policy version, while a
// pack that failed verification is not fetched again until "update now".
func TestPackDownloadRetriedNextHeartbeat(t *testing.T) {
	h := newHarness(t)
	h.wait = time.Second
	good, ref := buildPack(t, "core", "1", h.m.PackKey, rulepack.File{Entry: rulepack.Entry{Module: "alpha", Path: "r.txt"}, Data: []byte("r")})
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"alpha": {Enabled: true, RulePacks: []string{"core"}}}, ref))
	a, _ := h.start("alpha")
	fm := h.mods["alpha"]
	eventually(t, "v1 applied without the pack", 5*time.Second, func() bool { s, _ := fm.lastSpec(); return s.PolicyVersion == "v1" })
	if s, _ := fm.lastSpec(); len(s.RuleFiles) != 0 {
		t.Fatalf("rule files %v before the pack exists", s.RuleFiles)
	}
	h.m.AddPack("core", "1", good)
	eventually(t, "pack fetched on a later heartbeat", 10*time.Second, func() bool { s, _ := fm.lastSpec(); return len(s.RuleFiles) == 1 })

	_, otherKey, _ := rulepack.GenerateKey()
	bad, ref2 := buildPack(t, "core", "2", otherKey, rulepack.File{Entry: rulepack.Entry{Module: "alpha", Path: "r.txt"}, Data: []byte("evil")})
	h.m.AddPack("core", "2", bad)
	h.m.SetPolicy(policy("v2", map[string]api.ModulePolicy{"alpha": {Enabled: true, RulePacks: []string{"core"}}}, ref2))
	refusals := func() int {
		n := 0
		for _, e := range h.m.Events() {
			if e.Kind == event.KindAgentRulePack && e.Fields["result"] == "refused" {
				n++
			}
		}
		return n
	}
	eventually(t, "refused once", 10*time.Second, func() bool { return refusals() == 1 })
	time.Sleep(3 * time.Second) // several heartbeats
	if n := refusals(); n != 1 {
		t.Fatalf("bad pack refused %d times; it must not be retried every heartbeat", n)
	}
	h.m.Queue(a.Status().ComputerID, api.Command{ID: "u1", Type: api.CommandUpdateNow})
	eventually(t, "retried on update_now", 10*time.Second, func() bool { return refusals() == 2 })
}

type stuckModule struct{ fakeModule }

func (m *stuckModule) Run(ctx context.Context, emit func(event.Event)) error {
	select {} // ignores ctx
}

func TestStuckModuleDoesNotHangShutdown(t *testing.T) {
	old := stopTimeout
	stopTimeout = 200 * time.Millisecond
	defer func() { stopTimeout = old }()
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"stuck": {Enabled: true}}))
	a, err := New(Config{DataDir: h.dir, Modules: map[string]func(Env) Module{"stuck": func(Env) Module { return &stuckModule{fakeModule{name: "stuck"}} }},
		Host: func() api.HostInfo { return *h.host.Load() }, HeartbeatWait: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	eventually(t, "stuck module running", 5*time.Second, func() bool { return a.Status().Modules[0].State == StateRunning })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return with a module ignoring its context")
	}
}
