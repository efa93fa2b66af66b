package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/manager/store"
	"github.com/mamori-sec/mamori/rulepack"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestManagerRulePackBuild(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.MkdirAll(filepath.Join(rules, "loginspect", "sigma"), 0o755)
	os.WriteFile(filepath.Join(rules, "loginspect", "sigma", "ssh.yml"), []byte("title: ssh\n"), 0o644)
	os.WriteFile(filepath.Join(rules, "stray.txt"), []byte("x"), 0o644)
	data := filepath.Join(dir, "data")
	out := filepath.Join(dir, "p.tar.gz")
	if _, err := runCLI(t, "manager", "rulepack", "build", rules, "--name", "base", "--version", "1", "--data-dir", data, "-o", out); err == nil || !strings.Contains(err.Error(), "stray.txt") {
		t.Fatalf("file outside a module dir: %v", err)
	}
	os.Remove(filepath.Join(rules, "stray.txt"))
	if _, err := runCLI(t, "manager", "rulepack", "build", rules, "--name", "base", "--version", "1", "--data-dir", data, "-o", out); err != nil {
		t.Fatal(err)
	}
	key, err := rulepack.LoadOrCreateKey(filepath.Join(data, "rulepack.key"))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	p, err := rulepack.Open(f, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
	if err != nil || len(p.ForModule("loginspect")) != 1 || p.Files[0].Path != "loginspect/sigma/ssh.yml" {
		t.Fatalf("built pack = %+v, %v", p, err)
	}
}

func TestManagerKeysTokensBackupRestore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	key, err := runCLI(t, "manager", "apikey", "create", "--data-dir", data, "--admin")
	if err != nil || !strings.HasPrefix(key, "mk_") {
		t.Fatalf("apikey create = %q, %v", key, err)
	}
	tok, err := runCLI(t, "manager", "token", "create", "--data-dir", data, "--max-uses", "3", "--group", "web")
	if err != nil || !strings.HasPrefix(tok, "mt_") {
		t.Fatalf("token create = %q, %v", tok, err)
	}
	os.WriteFile(filepath.Join(data, "ca.key"), []byte("ca-secret"), 0o600)
	backup := filepath.Join(dir, "b.tar.gz")
	if _, err := runCLI(t, "manager", "backup", backup, "--data-dir", data); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(dir, "restored")
	if _, err := runCLI(t, "manager", "restore", backup, "--data-dir", restored); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(restored, "ca.key")); string(b) != "ca-secret" {
		t.Fatalf("ca.key not restored: %q", b)
	}
	st, err := store.Open(context.Background(), "", restored)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.APIKeyBySecret(context.Background(), strings.TrimSpace(key))
	if err != nil || !k.SystemAdmin {
		t.Fatalf("restored key = %+v, %v", k, err)
	}
	if _, err := runCLI(t, "manager", "restore", backup, "--data-dir", restored); err == nil {
		t.Fatal("restore over existing data succeeded")
	}
}

// Every administrative failure exits with code 2, and restore looks at its
// archive before opening (and so creating) the store.
func TestManagerSubcommandErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tests := []struct {
		args []string
		want string // in the error
	}{
		{[]string{"manager", "token", "create", "--data-dir", data, "--policy", "nope"}, "--policy nope: no such policy"},
		{[]string{"manager", "apikey", "create", "--data-dir", data, "--db", "postgres://mamori@127.0.0.1:1/x?connect_timeout=2"}, ""},
		{[]string{"manager", "backup", filepath.Join(dir, "no-such-dir", "b.tar.gz"), "--data-dir", data}, "no-such-dir"},
		{[]string{"manager", "rulepack", "build", filepath.Join(dir, "no-rules"), "--name", "n", "--version", "1", "--data-dir", data}, "no-rules"},
	}
	for _, tc := range tests {
		_, err := runCLI(t, tc.args...)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v = %v, want exit 2 mentioning %q", tc.args[1:3], err, tc.want)
		}
	}
	fresh := filepath.Join(dir, "fresh")
	_, err := runCLI(t, "manager", "restore", filepath.Join(dir, "missing.tar.gz"), "--data-dir", fresh)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 2 {
		t.Fatalf("restore of a missing archive = %v, want exit 2", err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("restore of a missing archive created %s (%v)", fresh, err)
	}
}
