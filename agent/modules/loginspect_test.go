package modules

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/response"
)

type recBlocker struct {
	mu     sync.Mutex
	blocks []response.Block
}

func (b *recBlocker) Block(_ context.Context, x response.Block) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.blocks = append(b.blocks, x)
	return nil
}
func (b *recBlocker) Unblock(context.Context, netip.Prefix) error { return nil }

func TestLogInspectTailsAlertsAndBlocks(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "auth.log")
	os.WriteFile(logf, nil, 0o644)
	bl := &recBlocker{}
	m := newLogInspect(agent.Env{Logger: slog.Default(), DataDir: filepath.Join(dir, "data"), Blocker: bl, Hostname: "h"})
	settings, _ := json.Marshal(map[string]any{"sources": map[string]any{"files": []string{logf}, "poll_ms": 20}})
	if err := m.Configure(context.Background(), agent.ModuleSpec{Enabled: true, Settings: settings}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []event.Event
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, func(e event.Event) { mu.Lock(); got = append(got, e); mu.Unlock() })
	}()
	time.Sleep(100 * time.Millisecond)
	f, _ := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	now := time.Now()
	for i := 0; i < 6; i++ {
		fmt.Fprintf(f, "%s web1 sshd[4415]: Failed password for trend from 10.3.98.76 port 4415 ssh2\n", now.Format(time.Stamp))
	}
	f.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Kind != event.KindLogAlert || got[0].Src == nil || got[0].Src.IP != "10.3.98.76" || got[0].Action != "blocked" {
		t.Fatalf("events = %+v, want one blocked brute-force alert from 10.3.98.76", got)
	}
	if len(bl.blocks) != 1 || bl.blocks[0].Addr.String() != "10.3.98.76/32" || bl.blocks[0].TTL != 15*time.Minute {
		t.Fatalf("blocks = %+v", bl.blocks)
	}
	if st := m.Status(); st.Counters["lines"] != 6 || st.RuleCount == 0 {
		t.Errorf("status = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "positions.json")); err != nil {
		t.Errorf("positions not persisted in DataDir: %v", err)
	}
}

func TestLogInspectStrictSettings(t *testing.T) {
	m := newLogInspect(agent.Env{Logger: slog.Default(), DataDir: t.TempDir()})
	for _, s := range []string{
		`{"sources": {"files": ["/x"]}, "unknown": 1}`,
		`{"disabled_rules": ["no-such-rule"]}`,
		`{"thresholds": {"mamori_ssh_bruteforce": {"count": 3, "timespan": "ten minutes"}}}`,
		`{"decoders": [{"name": "x", "format": "regex", "regex": "("}]}`,
	} {
		if err := m.Configure(context.Background(), agent.ModuleSpec{Enabled: true, Settings: json.RawMessage(s)}); err == nil {
			t.Errorf("Configure(%s) succeeded", s)
		}
	}
	ok := `{"thresholds": {"mamori_ssh_bruteforce": {"count": 3, "timespan": "5m"}}, "disabled_rules": ["mamori_web_not_found"]}`
	if err := m.Configure(context.Background(), agent.ModuleSpec{Enabled: true, Settings: json.RawMessage(ok)}); err != nil {
		t.Errorf("Configure(%s) = %v", ok, err)
	}
}
