package modules

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/integrity"
	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

func TestIntegrityModule(t *testing.T) {
	root, data := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "srv"), 0o755))
	must(os.WriteFile(filepath.Join(root, "srv", "app.conf"), []byte("a=1\n"), 0o644))
	pol := filepath.Join(data, "pol.yaml")
	must(os.WriteFile(pol, []byte("rules:\n  - path: /srv\n    attributes: [meta, sha256]\n"), 0o644))
	var throttled atomic.Int64
	env := agent.Env{Logger: slog.Default(), DataDir: filepath.Join(data, "integrity"), Hostname: "h", Root: root,
		Throttle: func(context.Context) error { throttled.Add(1); return nil }}
	m := newIntegrity(env)
	spec := agent.ModuleSpec{Enabled: true, RuleFiles: []string{pol}, Settings: json.RawMessage(`{"builtin": false, "schedule": "300ms", "realtime": true}`)}
	if err := m.Configure(context.Background(), agent.ModuleSpec{Settings: json.RawMessage(`{"schedul": "1h"}`)}); err == nil {
		t.Error("Configure accepted an unknown setting")
	}
	must(m.Configure(context.Background(), spec))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := make(chan event.Event, 100)
	go m.Run(ctx, func(e event.Event) { evs <- e })
	next := func(kind event.Kind, what string) event.Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case e := <-evs:
				if e.Kind == kind && (what == "" || e.Fields["detected_by"] == what) {
					return e
				}
			case <-deadline:
				t.Fatalf("no %s %s event", kind, what)
			}
		}
	}
	next(event.KindIntegrityBaselineInit, "")
	// The key is kept in the agent's data directory, apart from the
	// baseline's own directory.
	if fi, err := os.Stat(filepath.Join(env.DataDir, "integrity.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key not in the data directory with mode 0600: %v %v", fi, err)
	}
	if keys, _ := filepath.Glob(filepath.Join(env.DataDir, "integrity", "*.key")); len(keys) != 0 {
		t.Errorf("keys beside the baseline: %v", keys)
	}
	for m.Status().State != agent.StateRunning {
		time.Sleep(10 * time.Millisecond)
	}
	must(os.WriteFile(filepath.Join(root, "srv", "app.conf"), []byte("a=2\n"), 0o644))
	if os.Geteuid() == 0 {
		e := next(event.KindIntegrityChange, "realtime")
		if e.File.Path != "/srv/app.conf" || len(e.Changes) == 0 || e.Process == nil {
			t.Errorf("realtime event %+v", e)
		}
	}
	e := next(event.KindIntegrityChange, "")
	if !strings.Contains(e.Message, "sha256") {
		t.Errorf("scheduled check event: %s", e.Message)
	}
	if throttled.Load() == 0 {
		t.Error("Throttle was never called")
	}
	// The manager asks for a rebuild: the baseline takes the current state.
	spec.Settings = json.RawMessage(`{"builtin": false, "schedule": "300ms", "rebuild_baseline": "req-1"}`)
	must(m.Configure(context.Background(), spec))
	e = next(event.KindIntegrityBaselineInit, "")
	if e.Fields["via"] != "manager" {
		t.Errorf("rebuild event via %q", e.Fields["via"])
	}
	st := m.Status()
	if st.RuleCount != 1 || st.Counters["changes"] == 0 {
		t.Errorf("status %+v", st)
	}
}

// TestIntegrityModuleMigratesLayout: a baseline an older agent kept with
// its key beside it in the data directory is moved to the current layout
// and still verifies (no silent rebuild).
func TestIntegrityModuleMigratesLayout(t *testing.T) {
	root, data := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(root, "srv"), 0o755)
	os.WriteFile(filepath.Join(root, "srv", "a"), []byte("a"), 0o644)
	pol, err := policy.Parse("t", []byte("rules:\n  - path: /srv\n    attributes: [meta, sha256]\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(data, "agent.fimdb")
	key, err := baseline.LoadOrCreateKey(baseline.LegacyKeyPath(old))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := integrity.Init(context.Background(), integrity.Config{Policy: pol, Baseline: old, Key: key, Root: root}); err != nil {
		t.Fatal(err)
	}
	m := newIntegrity(agent.Env{Logger: slog.Default(), DataDir: data, Hostname: "h", Root: root}).(*integrityModule)
	base, keyPath, _ := m.paths()
	if err := m.migrateLayout(base, keyPath); err != nil {
		t.Fatal(err)
	}
	k, err := baseline.LoadKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := baseline.Load(base, k); err != nil {
		t.Errorf("migrated baseline: %v", err)
	}
	for _, p := range []string{old, baseline.LegacyKeyPath(old)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}
