package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fwPolicy = `
defaults: {in: deny, out: allow}
ip_lists:
  admins: [10.0.0.0/8]
rules:
  - {name: ssh-admins, action: allow, direction: in, protocol: tcp, src: ["@admins"], dst_ports: [22]}
  - {name: web, action: allow, direction: in, protocol: tcp, dst_ports: [80, 443]}
  - {name: dns-audit, action: log-only, direction: out, protocol: udp, dst_ports: [53]}
`

func runMamori(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
			if ee.Err != nil {
				out.WriteString(ee.Err.Error())
			}
		} else {
			code = 2
			out.WriteString(err.Error())
		}
	}
	return out.String(), code
}

func writePolicy(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFirewallTestCommand(t *testing.T) {
	pol := writePolicy(t, fwPolicy)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--src", "10.1.2.3", "--dst", "10.9.9.9", "--dport", "22"}, 0, "ALLOWED: rule 1 (ssh-admins)"},
		{[]string{"--src", "203.0.113.1", "--dst", "10.9.9.9", "--dport", "22"}, 1, "DENIED: no rule matched: default in policy is deny"},
		{[]string{"--src", "2001:db8::1", "--dst", "2001:db8::2", "--dport", "443"}, 0, "rule 2 (web)"},
		{[]string{"--dir", "out", "--proto", "udp", "--src", "10.9.9.9", "--dst", "9.9.9.9", "--dport", "53"}, 0, "logged by rule 3 (dns-audit)"},
		{[]string{"--src", "203.0.113.1", "--dst", "10.9.9.9", "--dport", "5000", "--state", "established"}, 0, "stateful"},
		{[]string{"--src", "10.1.2.3", "--dst", "2001:db8::2"}, 2, "one address family"},
		{[]string{"--src", "nope", "--dst", "10.9.9.9"}, 2, "--src"},
	}
	for _, tc := range cases {
		out, code := runMamori(t, append([]string{"firewall", "test", "--policy", pol}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("firewall test %v = %d %q, want %d and %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}

func TestFirewallApplyRejectsInvalidPolicy(t *testing.T) {
	pol := writePolicy(t, "defaults: {in: deny, out: allow}\nrules:\n  - {name: bad, action: allow, direction: in, protocol: tcp, dst_ports: [\"90-80\"]}\n")
	out, code := runMamori(t, "firewall", "apply", "--state-dir", t.TempDir(), pol)
	if code != 2 || !strings.Contains(out, "rule 1 (bad, line 3): dst_ports") || !strings.Contains(out, "reversed range") {
		t.Errorf("apply of an invalid policy = %d %q", code, out)
	}
}

func TestFirewallBlockFileErrorsNameLine(t *testing.T) {
	f := filepath.Join(t.TempDir(), "list.txt")
	os.WriteFile(f, []byte("# global list\n198.51.100.7\n\n2001:db8::/64 # a net\n10.0.0.0/40\n"), 0o644)
	out, code := runMamori(t, "firewall", "block", "--file", f)
	if code != 2 || !strings.Contains(out, f+":5") || !strings.Contains(out, "10.0.0.0/40") {
		t.Errorf("block --file with a bad line 5 = %d %q", code, out)
	}
}

func TestFirewallDryRun(t *testing.T) {
	out, code := runMamori(t, "firewall", "apply", "--dry-run", writePolicy(t, fwPolicy))
	if code != 0 || !strings.Contains(out, "table inet mamori {") || !strings.Contains(out, "ip saddr @l_admins_4 tcp dport 22 counter accept") {
		t.Errorf("apply --dry-run = %d %q", code, out)
	}
}

// TestFirewallCommandsInNetns drives the commands against the kernel of a
// throwaway network namespace.
func TestFirewallCommandsInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("firewall CLI test needs root in CI")
		}
		t.Skip("firewall CLI test: needs root to create a network namespace")
	}
	b := make([]byte, 4)
	rand.Read(b)
	ns := "mfwcli" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	state := t.TempDir()
	fw := func(args ...string) (string, int) {
		return runMamori(t, append([]string{"firewall", "--netns", ns, "--state-dir", state}, args...)...)
	}
	pol := writePolicy(t, fwPolicy)
	if out, code := fw("apply", pol); code != 0 || !strings.Contains(out, "applied policy") {
		t.Fatalf("apply = %d %q", code, out)
	}
	if out, code := fw("apply", pol); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("second apply = %d %q", code, out)
	}
	if out, code := fw("show"); code != 0 || !strings.Contains(out, "kernel matches policy") || !strings.Contains(out, "r1 ssh-admins") {
		t.Errorf("show = %d %q", code, out)
	}
	if out, code := runMamori(t, "firewall", "--netns", ns, "--state-dir", t.TempDir(), "show"); code != 0 || !strings.Contains(out, "table inet mamori holds") || !strings.Contains(out, "r1 ssh-admins") {
		t.Errorf("show without a recorded policy = %d %q", code, out)
	}
	if out, code := fw("diff", pol); code != 0 || !strings.Contains(out, "no change") {
		t.Errorf("diff of the applied policy = %d %q", code, out)
	}
	other := writePolicy(t, strings.Replace(fwPolicy, "443", "8443", 1))
	if out, code := fw("diff", other); code != 1 || !strings.Contains(out, "+") {
		t.Errorf("diff of a changed policy = %d %q", code, out)
	}
	if out, code := fw("block", "--ttl", "1m", "192.0.2.7", "2001:db8::/64"); code != 0 {
		t.Fatalf("block = %d %q", code, out)
	}
	if out, _ := fw("blocked"); !strings.Contains(out, "192.0.2.7/32") || !strings.Contains(out, "2001:db8::/64") {
		t.Errorf("blocked = %q", out)
	}
	if out, code := fw("unblock", "192.0.2.7"); code != 0 {
		t.Errorf("unblock = %d %q", code, out)
	}
	if out, _ := fw("blocked"); strings.Contains(out, "192.0.2.7") {
		t.Errorf("blocked after unblock = %q", out)
	}

	// Safe apply: the rollback timer runs in-process here; the real
	// detached process is exercised by test/e2e/firewall.
	done := make(chan string, 1)
	orig := spawnRollback
	t.Cleanup(func() { spawnRollback = orig })
	spawnRollback = func(args []string) error {
		go func() {
			out, _ := runMamori(t, args...)
			done <- out
		}()
		return nil
	}
	if out, code := fw("apply", "--confirm-within", "1s", other); code != 0 || !strings.Contains(out, "mamori firewall confirm") {
		t.Fatalf("apply --confirm-within = %d %q", code, out)
	}
	select {
	case out := <-done:
		if !strings.Contains(out, "rolled back") {
			t.Errorf("rollback output %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no rollback within 10s")
	}
	if out, code := fw("diff", pol); code != 0 {
		t.Errorf("after rollback the kernel does not hold the first policy: %d %q", code, out)
	}
	if out, code := fw("apply", "--confirm-within", "1s", other); code != 0 {
		t.Fatalf("apply --confirm-within = %d %q", code, out)
	}
	if out, code := fw("confirm"); code != 0 || !strings.Contains(out, "confirmed") {
		t.Errorf("confirm = %d %q", code, out)
	}
	if out := <-done; strings.Contains(out, "rolled back") {
		t.Errorf("confirmed apply was rolled back: %q", out)
	}
	if out, code := fw("diff", other); code != 0 {
		t.Errorf("the confirmed policy is not in force: %d %q", code, out)
	}
	if out, code := fw("confirm"); code != 1 {
		t.Errorf("confirm with nothing pending = %d %q", code, out)
	}
}
