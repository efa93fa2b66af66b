package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/integrity/baseline"
)

// TestIntegrityKeyApart: the key is kept apart from the baseline, so
// someone who can write the baseline's directory and re-seals a forged
// baseline with a key of their own there (where keys used to be) is
// refused; a key others can read is refused too.
func TestIntegrityKeyApart(t *testing.T) {
	dir := t.TempDir()
	integrityTestEnv(t, dir)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "a"), []byte("a"), 0o644)
	if _, code, err := runIntegrityCmd(t, "integrity", "init", "--no-progress", tree); code != 0 {
		t.Fatalf("init: exit %d %v", code, err)
	}
	keyPath := filepath.Join(dir, "keys", "integrity.key")
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key not created 0600 at %s: %v %v", keyPath, fi, err)
	}
	dbs, _ := filepath.Glob(filepath.Join(dir, "db", "*.fimdb"))
	if len(dbs) != 1 {
		t.Fatalf("baselines: %v", dbs)
	}
	if _, err := os.Stat(baseline.LegacyKeyPath(dbs[0])); err == nil {
		t.Fatal("init left a key beside the baseline")
	}

	// The forger: change a file, rebuild the baseline's content to match
	// (so the change would go unseen) and seal it with their own key in
	// the baseline directory.
	os.WriteFile(filepath.Join(tree, "a"), []byte("evil"), 0o644)
	realKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := baseline.Load(dbs[0], realKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Entries {
		if b.Entries[i].Path == filepath.Join(tree, "a") {
			b.Entries[i].Size = 4
		}
	}
	forged, err := baseline.LoadOrCreateKey(baseline.LegacyKeyPath(dbs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := baseline.Save(dbs[0], forged, b); err != nil {
		t.Fatal(err)
	}
	_, code, err := runIntegrityCmd(t, "integrity", "check", "--no-progress", tree)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("check of a baseline re-sealed with a key from the baseline dir: exit %d, %v", code, err)
	}

	os.Chmod(keyPath, 0o644)
	_, code, err = runIntegrityCmd(t, "integrity", "check", "--no-progress", tree)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "accessible to others") {
		t.Errorf("check with a world-readable key: exit %d, %v", code, err)
	}
	os.Chmod(keyPath, 0o600)
	os.Chmod(filepath.Dir(keyPath), 0o777)
	_, code, err = runIntegrityCmd(t, "integrity", "check", "--no-progress", tree)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("check with a key in a world-writable directory: exit %d, %v", code, err)
	}
}
