package modules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/firewall/nft"
	"github.com/mamori-sec/mamori/response"
)

const fwSettings = `{
  "policy": {
    "defaults": {"in": "deny", "out": "allow"},
    "rules": [{"name": "ssh", "action": "allow", "direction": "in", "protocol": "tcp", "dst_ports": [22]}]
  },
  "management": ["10.0.0.5:4443"],
  "block_list": ["198.51.100.0/24", "2001:db8:bad::/48"]
}`

func TestFirewallSettingsStrict(t *testing.T) {
	cases := []struct{ name, settings, want string }{
		{"unknown field", `{"policy": {"defaults": {"in": "deny", "out": "allow"}, "rules": []}, "colour": 1}`, "colour"},
		{"unknown policy field", `{"policy": {"defaults": {"in": "deny", "out": "allow"}, "rules": [], "extra": true}}`, "extra"},
		{"no policy", `{}`, "policy: missing"},
		{"bad rule", `{"policy": {"defaults": {"in": "deny", "out": "allow"}, "rules": [{"name": "x", "action": "allow", "direction": "in", "src": ["1.2.3.4/40"]}]}}`, "rule 1 (x): src"},
		{"bad block list", `{"policy": {"defaults": {"in": "deny", "out": "allow"}, "rules": []}, "block_list": ["nope"]}`, "block_list[0]"},
		{"bad management", `{"policy": {"defaults": {"in": "deny", "out": "allow"}, "rules": []}, "management": ["manager.example"]}`, "management[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newFirewall(agent.Env{Logger: slog.Default()})
			err := m.Configure(context.Background(), agent.ModuleSpec{Enabled: true, Settings: json.RawMessage(tc.settings)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Configure(%s) = %v, want an error mentioning %q", tc.settings, err, tc.want)
			}
		})
	}
}

func TestFirewallModuleInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("firewall module test needs root in CI")
		}
		t.Skip("firewall module test: needs root for a network namespace")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "mfwmod" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	m := newFirewall(agent.Env{Logger: slog.Default(), Hostname: "h"}).(*firewallModule)
	m.netnsFD = fd
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Configure(ctx, agent.ModuleSpec{Enabled: true, Settings: json.RawMessage(fwSettings)}); err != nil {
		t.Fatal(err)
	}
	// The module is the agent's Blocker.
	var bl response.Blocker = m
	if err := bl.Block(ctx, response.Block{Addr: netip.MustParsePrefix("192.0.2.66/32"), TTL: time.Minute, Reason: "test", Module: "loginspect"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	var list []nft.Blocked
	for start := time.Now(); time.Since(start) < 3*time.Second && len(list) < 3; time.Sleep(10 * time.Millisecond) {
		if list, err = m.fw.Blocked(); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range list {
		got[b.Prefix.String()] = true
	}
	for _, want := range []string{"192.0.2.66/32", "198.51.100.0/24", "2001:db8:bad::/48"} {
		if !got[want] {
			t.Errorf("blocked = %v, missing %s", got, want)
		}
	}
	// The management channel is kept open by an implicit rule.
	if c := m.fw.Compiled(); c.Rules[0].Name != "mamori-management-out" {
		t.Errorf("first rule = %+v, want the implicit management rule", c.Rules[0])
	}

	// An invalid update is refused and the running policy stays.
	before := m.fw.Compiled().Fingerprint
	bad := strings.Replace(fwSettings, `"dst_ports": [22]`, `"dst_ports": [0]`, 1)
	if err := m.Configure(ctx, agent.ModuleSpec{Enabled: true, Settings: json.RawMessage(bad)}); err == nil {
		t.Fatal("Configure with port 0 succeeded")
	}
	if m.fw.Compiled().Fingerprint != before {
		t.Error("a refused configuration replaced the policy")
	}

	// Drift is restored and reported through Run's events.
	events := make(chan event.Event, 16)
	go m.Run(ctx, func(ev event.Event) { events <- ev })
	m.fw.Poll(ctx, time.Now()) // nothing to report yet
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "delete", "table", "inet", "mamori").CombinedOutput(); err != nil {
		t.Skipf("nft not installed: %v %s", err, out)
	}
	// The module's poll runs every 2s by default; block events may come
	// first.
	deadline := time.After(6 * time.Second)
wait:
	for {
		select {
		case ev := <-events:
			if ev.Kind == event.KindFirewallDrift {
				if ev.Action != "restored" {
					t.Errorf("drift event = %+v, want restored", ev)
				}
				break wait
			}
		case <-deadline:
			t.Fatal("no drift event within 6s")
		}
	}
	if st := m.Status(); st.State != agent.StateRunning || st.RuleCount != 3 {
		t.Errorf("Status = %+v", st)
	}
	if c, ok := m.Status().Counters["block_failures"]; !ok || c != 0 {
		t.Errorf("Status counters = %v, want block_failures 0", m.Status().Counters)
	}
	// Deleting the table dropped the block sets; the module re-adds the
	// manager's list after the restore.
	list, err = m.fw.Blocked()
	if err != nil || len(list) != 2 {
		t.Errorf("after drift restore Blocked() = %+v, %v; want the 2 block-list entries", list, err)
	}
	if err := m.Configure(ctx, agent.ModuleSpec{Enabled: false}); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.State != agent.StateDisabled {
		t.Errorf("after disable Status = %+v", st)
	}
}

// TestFirewallModuleUnprivileged re-runs this test binary as nobody: the
// module must report unavailable with the reason, not fail.
func TestFirewallModuleUnprivileged(t *testing.T) {
	if os.Getenv("MAMORI_FW_UNPRIV_CHILD") == "1" {
		m := newFirewall(agent.Env{Logger: slog.Default()})
		err := m.Configure(context.Background(), agent.ModuleSpec{Enabled: true, Settings: json.RawMessage(fwSettings)})
		st := m.Status()
		if !errors.Is(err, agent.ErrUnavailable) || st.State != agent.StateUnavailable || !strings.Contains(st.Reason, "privilege") {
			t.Fatalf("unprivileged Configure = %v, status %+v; want ErrUnavailable with a reason", err, st)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("unprivileged module test: needs root to switch to nobody")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mfwunpriv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "modules.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestFirewallModuleUnprivileged$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MAMORI_FW_UNPRIV_CHILD=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFirewallModuleUnprivileged") {
		t.Errorf("unprivileged child: %v\n%s", err, out)
	}
}
