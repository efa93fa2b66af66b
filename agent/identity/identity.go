// Package identity describes the host the agent runs on: hostname,
// machine-id, the cloud instance ID when the machine knows it, OS, kernel and
// addresses. machine-id and instance-id are what let the manager tell a
// cloned disk image from the original computer, so they always come from the
// running system: an agent whose modules are re-rooted (`agent run --root`,
// a mounted image under inspection) must still report this machine, or the
// manager would take it for a clone of whatever the image was copied from.
package identity

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/mamori-sec/mamori/api"
)

// SystemRoot is where the running system's /etc, /var and /sys are.
const SystemRoot = "/"

// Host describes the running system. agentVersion is reported as is.
// Missing sources leave fields empty: no field is worth failing the agent
// for. It takes no root on purpose: the modules' filesystem root is not the
// machine's identity.
func Host(agentVersion string) api.HostInfo { return HostAt(SystemRoot, agentVersion) }

// HostAt reads the host information below sysRoot, which must hold the
// running system's files: SystemRoot in production, a fixture in tests.
// Never pass the modules' root here.
func HostAt(sysRoot, agentVersion string) api.HostInfo {
	h := api.HostInfo{Arch: runtime.GOARCH, AgentVersion: agentVersion}
	h.Hostname, _ = os.Hostname()
	h.MachineID = MachineID(sysRoot)
	h.InstanceID = InstanceID(sysRoot)
	h.OS = osName(sysRoot)
	h.Kernel = kernel()
	h.IPs = addrs()
	return h
}

// MachineID is systemd's /etc/machine-id (or the D-Bus copy).
func MachineID(root string) string {
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				return s
			}
		}
	}
	return ""
}

// InstanceID is the cloud instance ID from local sources only (cloud-init's
// cache, then the DMI asset tag that EC2 Nitro instances carry) — the agent
// does not call the metadata service, which may be firewalled.
func InstanceID(root string) string {
	if b, err := os.ReadFile(filepath.Join(root, "var/lib/cloud/data/instance-id")); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" && s != "iid-datasource-none" {
			return s
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "sys/class/dmi/id/board_asset_tag")); err == nil {
		if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "i-") {
			return s
		}
	}
	return ""
}

func osName(root string) string {
	f, err := os.Open(filepath.Join(root, "etc/os-release"))
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return runtime.GOOS
}

func kernel() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func addrs() []string {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			out = append(out, n.IP.String())
		}
	}
	return out
}
