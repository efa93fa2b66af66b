package spine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
)

// genModule emits Count numbered events ("<run>-<n>") at PerSecond, and
// records after each emit — which returns once the event is durable in the
// outbox — how far it got, so a restarted agent continues instead of
// starting over. A lost outbox event would then be missing from the store
// for good; a resent one is deduplicated by its ID.
type genModule struct {
	dir string

	mu   sync.Mutex
	cfg  genSettings
	st   agent.ModuleStatus
	next int
}

type genSettings struct {
	Run       string `json:"run"`
	Count     int    `json:"count"`
	PerSecond int    `json:"per_second"`
}

const genName = "e2egen"

var _ agent.Module = (*genModule)(nil)

func newGen(env agent.Env) agent.Module { return &genModule{dir: env.DataDir} }

func (g *genModule) Name() string { return genName }

func (g *genModule) Configure(_ context.Context, spec agent.ModuleSpec) error {
	var s genSettings
	if len(spec.Settings) > 0 {
		dec := json.NewDecoder(bytes.NewReader(spec.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return fmt.Errorf("decoding %s settings: %w", genName, err)
		}
	}
	g.mu.Lock()
	g.cfg = s
	g.mu.Unlock()
	return nil
}

func (g *genModule) progressFile() string { return filepath.Join(g.dir, "progress") }

func (g *genModule) Run(ctx context.Context, emit func(event.Event)) error {
	g.mu.Lock()
	cfg := g.cfg
	g.mu.Unlock()
	if cfg.Run == "" || cfg.Count == 0 {
		<-ctx.Done()
		return nil
	}
	os.MkdirAll(g.dir, 0o700)
	next := 0
	if b, err := os.ReadFile(g.progressFile()); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 && f[0] == cfg.Run {
			next, _ = strconv.Atoi(f[1])
		}
	}
	gap := time.Second / time.Duration(max(cfg.PerSecond, 1))
	for ; next < cfg.Count; next++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(gap):
		}
		emit(event.Event{ID: fmt.Sprintf("%s-%06d", cfg.Run, next), Time: time.Now().UTC(), Kind: "test.generated",
			Severity: event.SeverityLow, Message: fmt.Sprintf("generated %d", next)})
		// Replace, not rewrite in place: the test reads it concurrently.
		tmp := g.progressFile() + ".tmp"
		if os.WriteFile(tmp, []byte(fmt.Sprintf("%s %d\n", cfg.Run, next+1)), 0o600) == nil {
			_ = os.Rename(tmp, g.progressFile())
		}
		g.mu.Lock()
		g.next = next + 1
		g.mu.Unlock()
	}
	<-ctx.Done()
	return nil
}

func (g *genModule) Status() agent.ModuleStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return agent.ModuleStatus{Name: genName, State: agent.StateRunning, Counters: map[string]int64{"emitted": int64(g.next)}}
}
