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
