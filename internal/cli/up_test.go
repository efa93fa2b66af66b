package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// startUp runs `mamori up` until "Press Ctrl-C" shows, lets it work for a
// moment, then stops it and returns what it printed.
func startUp(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		// Only log inspection on a file of the test's own: the test must not
		// baseline the host or touch its firewall.
		on := true
		src, _ := json.Marshal(map[string]any{"files": []string{filepath.Join(dir, "auth.log")}})
		mods := api.PolicyModules{"loginspect": {Enabled: &on, Settings: map[string]json.RawMessage{"sources": src}}}
		done <- runUp(ctx, upOptions{dataDir: dir, listen: "127.0.0.1:0", modules: mods}, &out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("up exited early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("up did not come up within 30s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("up did not stop within 20s of cancel")
	}
	return out.String()
}

func TestUpCreatesThenReuses(t *testing.T) {
	dir := t.TempDir()
	first := startUp(t, dir)
	for _, want := range []string{"manager API: https://127.0.0.1:", "admin API key (shown once", "local agent: enrolled"} {
		if !strings.Contains(first, want) {
			t.Errorf("first `mamori up` output lacks %q:\n%s", want, first)
		}
	}
	second := startUp(t, dir)
	if strings.Contains(second, "shown once") || !strings.Contains(second, "already enrolled") {
		t.Errorf("second `mamori up` did not reuse the data:\n%s", second)
	}
}
