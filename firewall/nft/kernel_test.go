package nft

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/firewall/internal/nstest"
	"github.com/mamori-sec/mamori/firewall/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nft golden files")

func plan(t testing.TB, file string) *Plan {
	t.Helper()
	p, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := policy.Compile(p, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return Build(c)
}

func policies(t testing.TB) []string {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata policies: %v", err)
	}
	return files
}

// TestGoldenText pins the nft text each policy renders to.
func TestGoldenText(t *testing.T) {
	for _, f := range policies(t) {
		got := plan(t, f).Text()
		golden := strings.TrimSuffix(f, ".yaml") + ".nft"
		if *update {
			os.WriteFile(golden, []byte(got), 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s: rendered text differs from %s:\n%s", f, golden, got)
		}
	}
}

var countersRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)

func listTable(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	out := ns.MustRun("nft", "list", "table", "inet", TableName)
	return countersRE.ReplaceAllString(out, "counter")
}

// applyBoth applies p through netlink in one namespace and loads its nft
// text with `nft -f` in another, and returns both `nft list` listings.
func applyBoth(t *testing.T, p *Plan) (netlink, text string) {
	t.Helper()
	a, b := nstest.New(t), nstest.New(t)
	k, err := Open(a.FD)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := k.Apply(p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	file := filepath.Join(t.TempDir(), "ruleset.nft")
	if err := os.WriteFile(file, []byte(p.Text()), 0o644); err != nil {
		t.Fatal(err)
	}
	b.MustRun("nft", "-f", file)
	return listTable(t, a), listTable(t, b)
}

// TestNetlinkMatchesText applies each plan through netlink in one
// namespace and loads its nft text with `nft -f` in another: the kernel
// must hold the same ruleset, as `nft list` shows it.
func TestNetlinkMatchesText(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	for _, f := range policies(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got, want := applyBoth(t, plan(t, f))
			t.Logf("kernel listing:\n%s", got)
			if got != want {
				t.Errorf("netlink apply lists as\n%s\nnft -f lists as\n%s", got, want)
			}
		})
	}
}

func TestApplyIdempotentAndDrift(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t)
	k, err := Open(ns.FD)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	p := plan(t, "testdata/web.yaml")
	if changed, err := k.Apply(p); err != nil || !changed {
		t.Fatalf("first Apply = %v, %v; want changed", changed, err)
	}
	before := ns.MustRun("nft", "-a", "list", "table", "inet", TableName)
	if changed, err := k.Apply(p); err != nil || changed {
		t.Fatalf("second Apply = %v, %v; want unchanged", changed, err)
	}
	if after := ns.MustRun("nft", "-a", "list", "table", "inet", TableName); after != before {
		t.Errorf("re-apply changed the table:\n%s\nwas\n%s", after, before)
	}

	drifts := []struct {
		name string
		cmd  []string
		want string
	}{
		{"rule added", []string{"nft", "insert", "rule", "inet", TableName, "input", "tcp", "dport", "4444", "accept"}, "chain input"},
		{"rule deleted", []string{"nft", "flush", "chain", "inet", TableName, "output"}, "chain output"},
		{"policy changed", []string{"nft", "chain", "inet", TableName, "input", "{", "policy", "accept", ";", "}"}, "default policy"},
		{"set element added", []string{"nft", "add", "element", "inet", TableName, "l_admins_4", "{", "6.6.6.0/24", "}"}, "set l_admins_4"},
		{"table deleted", []string{"nft", "delete", "table", "inet", TableName}, "missing"},
	}
	for _, d := range drifts {
		t.Run(d.name, func(t *testing.T) {
			ns.MustRun(d.cmd[0], d.cmd[1:]...)
			st, err := k.Read()
			if err != nil {
				t.Fatal(err)
			}
			diff := st.Diff(p)
			if len(diff) == 0 || !strings.Contains(strings.Join(diff, "; "), d.want) {
				t.Errorf("Diff after %s = %q, want a difference mentioning %q", d.name, diff, d.want)
			}
			if changed, err := k.Apply(p); err != nil || !changed {
				t.Fatalf("restoring Apply = %v, %v", changed, err)
			}
			st, _ = k.Read()
			if diff := st.Diff(p); len(diff) != 0 {
				t.Errorf("after restore Diff = %q", diff)
			}
		})
	}
}

// TestAtomicCommit sends a batch whose last rule the kernel rejects: the
// whole batch must be refused and the previous ruleset stay in place.
func TestAtomicCommit(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t)
	k, err := Open(ns.FD)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := k.Apply(plan(t, "testdata/web.yaml")); err != nil {
		t.Fatal(err)
	}
	before := listTable(t, ns)
	bad := plan(t, "testdata/lists.yaml")
	last := &bad.Chains[1]
	last.Rules = append(last.Rules, Rule{Matches: []Match{Addr{Set: "no_such_set"}}, Verdict: "drop", Tag: "broken"})
	if _, err := k.Apply(bad); err == nil {
		t.Fatal("Apply of a batch with a broken rule succeeded")
	}
	if after := listTable(t, ns); after != before {
		t.Errorf("a refused batch changed the ruleset:\n%s\nwas\n%s", after, before)
	}
}

// TestCoexists checks that other tables are left alone.
func TestCoexists(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t)
	ns.MustRun("nft", "add", "table", "inet", "other")
	ns.MustRun("nft", "add", "chain", "inet", "other", "c", "{", "type", "filter", "hook", "input", "priority", "0", ";", "}")
	k, err := Open(ns.FD)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := k.Apply(plan(t, "testdata/web.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := k.Delete(); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun("nft", "list", "tables")
	if !strings.Contains(out, "table inet other") || strings.Contains(out, TableName) {
		t.Errorf("tables after apply+delete: %s", out)
	}
}

func TestBlockSets(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t)
	k, err := Open(ns.FD)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	pfx := netip.MustParsePrefix
	// Blocking before any policy creates the block-only table.
	err = k.Block([]BlockEntry{
		{Prefix: pfx("10.1.0.5/32"), TTL: 2 * time.Second},
		{Prefix: pfx("10.1.0.5/32"), TTL: time.Second},
		{Prefix: pfx("192.0.2.0/24"), TTL: 10 * time.Minute},
		{Prefix: pfx("192.0.2.9/32")},
		{Prefix: pfx("2001:db8::/64")},
	})
	if err != nil {
		t.Fatalf("Block: %v", err)
	}
	// Blocking what is already blocked is not an error (the manager's list
	// is re-sent after a drift restore).
	if err := k.Block([]BlockEntry{{Prefix: pfx("192.0.2.0/24"), TTL: 10 * time.Minute}, {Prefix: pfx("2001:db8::/64")}}); err != nil {
		t.Errorf("Block of blocked entries: %v", err)
	}
	got := blockedSet(t, k)
	for _, want := range []string{"10.1.0.5/32", "192.0.2.0/24", "2001:db8::/64"} {
		if !got[want] {
			t.Errorf("Blocked() = %v, missing %s", got, want)
		}
	}
	if len(got) != 3 {
		t.Errorf("Blocked() = %v, want 3 entries", got)
	}
	// A policy change keeps the block sets' elements.
	if _, err := k.Apply(plan(t, "testdata/web.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := blockedSet(t, k); len(got) != 3 {
		t.Errorf("after a policy change Blocked() = %v, want the 3 entries kept", got)
	}
	if err := k.Unblock([]netip.Prefix{pfx("2001:db8::/64")}); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	got = blockedSet(t, k)
	if got["10.1.0.5/32"] || got["2001:db8::/64"] || !got["192.0.2.0/24"] {
		t.Errorf("after expiry and unblock Blocked() = %v, want only 192.0.2.0/24", got)
	}
}

func blockedSet(t *testing.T, k *Conn) map[string]bool {
	t.Helper()
	bl, err := k.Blocked()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, b := range bl {
		m[b.Prefix.String()] = true
	}
	return m
}

func TestBlockManyAndRangePrefixes(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t)
	k, err := Open(ns.FD)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var es []BlockEntry
	for i := range 20000 {
		a := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		es = append(es, BlockEntry{Prefix: netip.PrefixFrom(a, 32), TTL: time.Hour})
	}
	start := time.Now()
	if err := k.Block(es); err != nil {
		t.Fatalf("Block(20000): %v", err)
	}
	t.Logf("blocked 20000 addresses in %v", time.Since(start))
	bl, err := k.Blocked()
	if err != nil {
		t.Fatal(err)
	}
	// Adjacent /32s come back as the kernel stores them: merged or not,
	// they must cover exactly the 20000 addresses.
	total := 0
	for _, b := range bl {
		total += 1 << (32 - b.Prefix.Bits())
	}
	if total != 20000 {
		t.Errorf("Blocked() covers %d addresses, want 20000", total)
	}
	a := netip.MustParseAddr
	r := rangePrefixes(a("10.0.0.0"), a("10.0.1.4"))
	if fmt.Sprint(r) != "[10.0.0.0/24 10.0.1.0/30]" {
		t.Errorf("rangePrefixes = %v", r)
	}
}

// TestNetlinkMatchesTextBig covers the parallel rule encoding (big
// policies only): the pieces must land in one batch, in order.
func TestNetlinkMatchesTextBig(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	var src strings.Builder
	src.WriteString("defaults: {in: deny, out: allow}\nip_lists: {admins: [10.0.0.0/8, \"2001:db8::/32\"]}\nrules:\n")
	for i := range 3000 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&src, "  - {name: r%d, action: deny, direction: in, protocol: tcp, src: [11.%d.%d.0/24], dst_ports: [%d]}\n", i, i/256, i%256, 1024+i)
		case 1:
			fmt.Fprintf(&src, "  - {name: r%d, action: allow, direction: in, protocol: udp, src: [\"2001:db8:%x::/48\"], dst_ports: [\"%d-%d\"]}\n", i, i, 2000+i, 2001+i)
		case 2:
			fmt.Fprintf(&src, "  - {name: r%d, action: log-only, direction: out, protocol: tcp, dst: [\"@admins\"], dst_ports: [%d], log: true}\n", i, 1024+i)
		default:
			fmt.Fprintf(&src, "  - {name: r%d, action: allow, direction: in, protocol: icmp, src: [12.%d.%d.1]}\n", i, i/256, i%256)
		}
	}
	file := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(file, []byte(src.String()), 0o644)
	got, want := applyBoth(t, plan(t, file))
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("netlink and nft -f listings differ first at line %d:\n%s\n%s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("listings differ in length: %d vs %d lines", len(gl), len(wl))
	}
	if n := strings.Count(got, "comment \"mamori:"); n < 3000 {
		t.Errorf("%d rules listed, want at least 3000", n)
	}
}
