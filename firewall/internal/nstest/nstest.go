// Package nstest gives firewall tests throwaway network namespaces joined by
// veth pairs, and runs code or commands inside them, so tests exercise the
// real kernel without touching the host's own ruleset (the Tailscale
// util/linuxfw approach).
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t with the reason when the test cannot create network
// namespaces, except in CI (CI=true), where that is a failure.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("network-namespace test: needs root (running as uid %d)", os.Geteuid())
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			fail("network-namespace test: %s not installed (Debian packages iproute2, nftables, nmap)", tool)
		}
	}
}

// NS is one network namespace.
type NS struct {
	Name string
	FD   int
	t    testing.TB
}

// New creates a namespace with loopback up; it is deleted at cleanup.
func New(t testing.TB) *NS {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "mfw" + hex.EncodeToString(b)
	ns := &NS{Name: name, t: t}
	ns.mustIP("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening netns %s: %v", name, err)
	}
	ns.FD = fd
	t.Cleanup(func() { unix.Close(fd) })
	ns.MustRun("ip", "link", "set", "lo", "up")
	return ns
}

func (ns *NS) mustIP(args ...string) {
	ns.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		ns.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Link joins a and b with a veth pair and gives each side the addresses
// (CIDR notation, IPv4 and/or IPv6). IPv6 addresses skip duplicate address
// detection so they work at once.
func Link(t testing.TB, a *NS, aAddrs []string, b *NS, bAddrs []string) {
	t.Helper()
	ea, eb := "v"+a.Name[3:9]+b.Name[3:9], "w"+b.Name[3:9]+a.Name[3:9] // unique per pair, at most 15 bytes
	a.mustIP("link", "add", ea, "netns", a.Name, "type", "veth", "peer", "name", eb, "netns", b.Name)
	for _, side := range []struct {
		ns    *NS
		dev   string
		addrs []string
	}{{a, ea, aAddrs}, {b, eb, bAddrs}} {
		for _, ad := range side.addrs {
			args := []string{"addr", "add", ad, "dev", side.dev}
			if strings.Contains(ad, ":") {
				args = append(args, "nodad")
			}
			side.ns.MustRun("ip", args...)
		}
		side.ns.MustRun("ip", "link", "set", side.dev, "up")
	}
}

// Do runs fn with the calling goroutine's thread inside the namespace.
// Sockets created in fn stay in the namespace after it returns.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	if err := unix.Setns(ns.FD, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering netns %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the namespace: keep it locked so the
		// runtime retires it instead of reusing it.
		return fmt.Errorf("leaving netns %s: %w", ns.Name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen opens a listener inside the namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() (err error) { l, err = net.Listen(network, addr); return })
	return l, err
}

// ListenPacket opens a packet listener inside the namespace.
func (ns *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var l net.PacketConn
	err := ns.Do(func() (err error) { l, err = net.ListenPacket(network, addr); return })
	return l, err
}

// Dial connects from inside the namespace.
func (ns *NS) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) { c, err = net.DialTimeout(network, addr, timeout); return })
	return c, err
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
}

// Command builds a command that runs inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(name string, args ...string) string {
	ns.t.Helper()
	out, err := ns.Run(context.Background(), name, args...)
	if err != nil {
		ns.t.Fatalf("in netns %s: %s %s: %v: %s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
