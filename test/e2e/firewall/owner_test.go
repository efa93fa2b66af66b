package firewall

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/firewall"
	"github.com/mamori-sec/mamori/firewall/policy"
)

// TestCLIRefusesAgentOwnedTable: this test process plays the agent (it
// applies a policy and claims the table, as the firewall module does);
// `mamori firewall apply` must refuse to fight it, apply only with
// --force, and the agent must then report the drift as changed by the CLI
// and restore its policy.
func TestCLIRefusesAgentOwnedTable(t *testing.T) {
	requireRoot(t)
	bin := buildMamori(t)
	ns := newNetns(t, "mfwown")
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	before, _ := filepath.Glob(filepath.Join(firewall.OwnerDir, "*"))
	ctx := context.Background()
	agent, err := firewall.Open(firewall.Options{NetNS: fd, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	p, err := policy.DecodeYAML([]byte("defaults: {in: deny, out: allow}\nrules:\n  - {name: ssh, action: allow, direction: in, protocol: tcp, dst_ports: [22]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := agent.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := agent.ClaimForAgent(); err != nil {
		t.Fatal(err)
	}
	defer agent.ReleaseAgent()

	dir := t.TempDir()
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("defaults: {in: deny, out: allow}\nrules:\n  - {name: web, action: allow, direction: in, protocol: tcp, dst_ports: [80]}\n"), 0o644)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"firewall", "--netns", ns, "--state-dir", filepath.Join(dir, "state")}, args...)...).CombinedOutput()
		return string(out), err
	}

	out, err := run("apply", other)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "agent") || !strings.Contains(out, "--force") {
		t.Fatalf("apply on an agent-managed table = %v: %s; want exit 2 naming the agent and --force", err, out)
	}
	if !agent.InForce() {
		t.Fatal("the refused apply changed the agent's table")
	}

	if out, err := run("apply", "--force", other); err != nil || !strings.Contains(out, "applied") {
		t.Fatalf("apply --force: %v: %s", err, out)
	}
	var drift *event.Event
	for _, ev := range agent.Poll(ctx, time.Now()) {
		if ev.Kind == event.KindFirewallDrift {
			drift = &ev
		}
	}
	if drift == nil || drift.Fields["changed_by"] != "cli" || drift.Action != "restored" || !strings.Contains(drift.Message, "by the CLI") {
		t.Fatalf("drift after the CLI's forced apply = %+v, want restored and changed_by=cli", drift)
	}
	if !agent.InForce() {
		t.Error("the agent's policy was not restored")
	}

	// A table changed by hand is drift of unknown origin.
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "mamori", "input").CombinedOutput(); err != nil {
		t.Fatalf("nft flush: %v: %s", err, out)
	}
	drift = nil
	for _, ev := range agent.Poll(ctx, time.Now()) {
		if ev.Kind == event.KindFirewallDrift {
			drift = &ev
		}
	}
	if drift == nil || drift.Fields["changed_by"] != "unknown" {
		t.Errorf("drift after nft flush = %+v, want changed_by=unknown", drift)
	}

	// Once the agent lets go, the CLI applies without --force, and leaves
	// no record behind.
	agent.ReleaseAgent()
	if after, _ := filepath.Glob(filepath.Join(firewall.OwnerDir, "*")); len(after) > len(before) {
		t.Errorf("owner records left behind after release: %v (before the test: %v)", after, before)
	}
	if out, err := run("apply", other); err != nil {
		t.Errorf("apply after the agent released the table: %v: %s", err, out)
	}
}
