package identity

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHostFromFixtureRoot(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	write("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
	write("var/lib/cloud/data/instance-id", "i-0abc123\n")
	write("etc/os-release", "NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n")
	h := HostAt(root, "1.2.3")
	if h.MachineID != "0123456789abcdef0123456789abcdef" || h.InstanceID != "i-0abc123" || h.OS != "Debian GNU/Linux 13 (trixie)" || h.AgentVersion != "1.2.3" {
		t.Fatalf("Host = %+v", h)
	}
	if h.Hostname == "" || h.Kernel == "" {
		t.Errorf("Host = %+v: hostname or kernel empty", h)
	}
}

func TestInstanceIDFromDMI(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "sys/class/dmi/id"), 0o755)
	os.WriteFile(filepath.Join(root, "sys/class/dmi/id/board_asset_tag"), []byte("i-0feed\n"), 0o644)
	if got := InstanceID(root); got != "i-0feed" {
		t.Fatalf("InstanceID = %q, want i-0feed", got)
	}
	if got := InstanceID(t.TempDir()); got != "" {
		t.Fatalf("InstanceID of an empty root = %q, want empty", got)
	}
}

// Host takes no root: it always describes the running machine.
func TestHostIsTheRunningSystem(t *testing.T) {
	want := MachineID(SystemRoot)
	if want == "" {
		t.Skip("this machine has no /etc/machine-id to compare with")
	}
	if got := Host("v").MachineID; got != want {
		t.Fatalf("Host().MachineID = %q, want the running system's %q", got, want)
	}
}
