package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// runIntegrityCmd runs the root command and returns stdout and the exit code
// Main would give.
func runIntegrityCmd(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 2
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
	}
	return out.String(), code, err
}

// integrityTestEnv keeps baselines in dir/db and the MAC key in dir/keys,
// apart as in production, never in /etc/mamori.
func integrityTestEnv(t *testing.T, dir string) {
	t.Helper()
	t.Setenv("MAMORI_INTEGRITY_DIR", filepath.Join(dir, "db"))
	t.Setenv("MAMORI_INTEGRITY_KEY", filepath.Join(dir, "keys", "integrity.key"))
}

func TestIntegrityCommands(t *testing.T) {
	dir := t.TempDir()
	integrityTestEnv(t, dir)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(tree, "b"), []byte("b"), 0o644)

	if _, code, err := runIntegrityCmd(t, "integrity", "init", "--no-progress", tree); code != 0 {
		t.Fatalf("init: exit %d %v", code, err)
	}
	if _, code, _ := runIntegrityCmd(t, "integrity", "init", tree); code != 2 {
		t.Errorf("second init without --force: exit %d, want 2", code)
	}
	if out, code, err := runIntegrityCmd(t, "integrity", "check", tree); code != 0 || out != "" {
		t.Fatalf("clean check: exit %d %v, output %q", code, err, out)
	}
	os.Chmod(filepath.Join(tree, "a"), 0o600)
	out, code, _ := runIntegrityCmd(t, "integrity", "check", tree)
	if code != 1 || !strings.Contains(out, "0644 → 0600") {
		t.Errorf("check after chmod: exit %d, table\n%s", code, out)
	}
	out, code, _ = runIntegrityCmd(t, "integrity", "check", "--json", tree)
	var ev event.Event
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &ev); err != nil || code != 1 {
		t.Fatalf("check --json: exit %d, %v: %q", code, err, out)
	}
	if ev.Kind != event.KindIntegrityChange || ev.File.Path != filepath.Join(tree, "a") || ev.Changes[0] != (event.Change{Attr: "mode", Old: "0644", New: "0600"}) {
		t.Errorf("check --json event = %+v", ev)
	}
	if _, code, err := runIntegrityCmd(t, "integrity", "update", tree, "--only", filepath.Join(tree, "a")); code != 0 {
		t.Fatalf("update: exit %d %v", code, err)
	}
	if _, code, _ := runIntegrityCmd(t, "integrity", "check", tree); code != 0 {
		t.Errorf("check after update: exit %d, want 0", code)
	}
	// The update left an audit record saying who accepted what.
	audits, _ := filepath.Glob(filepath.Join(dir, "db", "*.audit.jsonl"))
	if len(audits) != 1 {
		t.Fatalf("audit logs: %v", audits)
	}
	f, _ := os.Open(audits[0])
	defer f.Close()
	var kinds []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a event.Event
		json.Unmarshal(sc.Bytes(), &a)
		kinds = append(kinds, string(a.Kind))
		if a.Kind == event.KindIntegrityBaselineUpdate && (a.User == nil || len(a.Evidence) != 1 || !strings.Contains(a.Evidence[0], "mode 0644 -> 0600")) {
			t.Errorf("update audit record = %+v", a)
		}
	}
	if strings.Join(kinds, ",") != "integrity.baseline_init,integrity.baseline_update" {
		t.Errorf("audit kinds = %v", kinds)
	}

	// A tampered baseline is refused: exit 2 with a clear error.
	dbs, _ := filepath.Glob(filepath.Join(dir, "db", "*.fimdb"))
	b, _ := os.ReadFile(dbs[0])
	b[len(b)/2] ^= 1
	os.WriteFile(dbs[0], b, 0o600)
	_, code, err := runIntegrityCmd(t, "integrity", "check", tree)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("check of tampered baseline: exit %d, %v", code, err)
	}
	os.WriteFile(dbs[0], b[:10], 0o600)
	_, code, err = runIntegrityCmd(t, "integrity", "check", tree)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("check of truncated baseline: exit %d, %v", code, err)
	}
}

func TestIntegrityPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	integrityTestEnv(t, dir)
	p := filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte("rules:\n  - path: /x\n    atributes: [size]\n"), 0o644)
	_, code, err := runIntegrityCmd(t, "integrity", "init", "--policy", p, "--strict", "--baseline", filepath.Join(dir, "b"))
	if code != 2 || err == nil || !strings.Contains(err.Error(), "bad.yaml:3") {
		t.Errorf("init with bad policy: exit %d, %v", code, err)
	}
	_, code, _ = runIntegrityCmd(t, "integrity", "check", "--policy", p, dir)
	if code != 2 {
		t.Errorf("--policy with paths: exit %d, want 2", code)
	}
}

// TestIntegrityWatch runs `integrity watch` and sees a change reported
// as a JSON event.
func TestIntegrityWatch(t *testing.T) {
	dir := t.TempDir()
	integrityTestEnv(t, dir)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "a"), []byte("a"), 0o644)
	if _, code, err := runIntegrityCmd(t, "integrity", "init", tree); code != 0 {
		t.Fatalf("init: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	root := NewRoot()
	out := &syncBuffer{}
	root.SetOut(out)
	root.SetArgs([]string{"integrity", "watch", "--json", tree})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	time.Sleep(300 * time.Millisecond)
	os.WriteFile(filepath.Join(tree, "a"), []byte("changed"), 0o644)
	for !strings.Contains(out.String(), `"kind":"integrity.change"`) {
		select {
		case err := <-done:
			t.Fatalf("watch ended (%v) without reporting; output %q", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
	var ev event.Event
	json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &ev)
	if ev.File == nil || ev.File.Path != filepath.Join(tree, "a") || ev.Fields["detected_by"] != "realtime" {
		t.Errorf("watch event %+v", ev)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
