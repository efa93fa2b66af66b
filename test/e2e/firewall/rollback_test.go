// Whole-binary test of the safe apply: the rollback timer is a detached
// `mamori firewall rollback` process that must outlive the apply command.
package firewall

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("firewall e2e: needs root for network namespaces")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail("firewall e2e: %s not installed", tool)
		}
	}
}

func buildMamori(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mamori")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mamori")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building mamori: %v\n%s", err, out)
	}
	return bin
}

// TestUnprivilegedIsUnavailable runs the binary as nobody: the firewall
// must say it is unavailable and why, and change nothing.
// newNetns adds a named network namespace (prefix plus random hex),
// deleted when the test ends.
func newNetns(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := prefix + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	return ns
}

func TestUnprivilegedIsUnavailable(t *testing.T) {
	requireRoot(t)
	bin := buildMamori(t)
	// t.TempDir directories are private to root.
	os.Chmod(filepath.Dir(bin), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o755)
	cmd := exec.Command(bin, "firewall", "blocked")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "unavailable") || !strings.Contains(string(out), "privilege") {
		t.Errorf("mamori firewall blocked as nobody = %v: %s; want exit 2 saying unavailable for lack of privilege", err, out)
	}
}

func TestUnconfirmedApplyRollsBack(t *testing.T) {
	requireRoot(t)
	bin := buildMamori(t)
	ns := newNetns(t, "mfwe2e")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	lockout := filepath.Join(dir, "lockout.yaml")
	os.WriteFile(good, []byte("defaults: {in: deny, out: allow}\nrules:\n  - {name: ssh, action: allow, direction: in, protocol: tcp, dst_ports: [22]}\n"), 0o644)
	os.WriteFile(lockout, []byte("defaults: {in: deny, out: deny}\nrules: []\n"), 0o644)
	state := filepath.Join(dir, "state")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"firewall", "--netns", ns, "--state-dir", state}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("apply", good); err != nil {
		t.Fatalf("apply: %v: %s", err, out)
	}
	start := time.Now()
	if out, err := run("apply", "--confirm-within", "2s", lockout); err != nil || !strings.Contains(out, "confirm") {
		t.Fatalf("apply --confirm-within: %v: %s", err, out)
	}
	if out, err := run("diff", lockout); err != nil {
		t.Fatalf("the lockout policy is not in force right after apply: %v: %s", err, out)
	}
	for time.Since(start) < 10*time.Second {
		if _, err := run("diff", good); err == nil {
			t.Logf("rolled back %v after the apply", time.Since(start).Round(100*time.Millisecond))
			if _, err := os.Stat(filepath.Join(state, "pending.json")); !os.IsNotExist(err) {
				t.Errorf("pending.json still there after the rollback: %v", err)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the unconfirmed policy was not rolled back within 10s")
}
