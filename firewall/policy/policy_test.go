package policy

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, y string) *Compiled {
	t.Helper()
	p, err := DecodeYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadTestdata(t *testing.T) {
	for _, f := range []string{"testdata/web.yaml", "testdata/web.json"} {
		p, err := Load(f)
		if err != nil {
			t.Fatalf("Load(%q) = %v", f, err)
		}
		c, warns, err := Compile(p, Options{})
		if err != nil {
			t.Fatalf("Compile(%q) = %v", f, err)
		}
		if len(c.Fingerprint) != 64 {
			t.Errorf("%s: fingerprint %q", f, c.Fingerprint)
		}
		for _, w := range warns {
			t.Logf("%s: warning: %s", f, w)
		}
	}
}

// The same policy in YAML and JSON compiles to the same fingerprint: the
// manager's JSON and the operator's YAML are one model.
func TestYAMLAndJSONAgree(t *testing.T) {
	y := `
defaults: {in: deny, out: allow}
ip_lists: {admins: [10.0.0.0/8]}
rules:
  - {name: ssh, action: allow, direction: in, protocol: tcp, src: ["@admins"], dst_ports: [22, "2222-2223"]}
`
	a := mustCompile(t, y)
	pj, err := Load("testdata/web.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Compile(pj, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint {
		t.Errorf("YAML fingerprint %s != JSON fingerprint %s", a.Fingerprint, b.Fingerprint)
	}
}

var badCases = []struct {
	name, yaml string
	want       []string // substrings of the error
}{
	{"unknown field", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, colour: red}]", []string{"colour"}},
	{"bad cidr", "defaults: {in: deny, out: allow}\nrules:\n  - {name: a, action: allow, direction: in, src: [10.0.0.0/33]}", []string{"rule 1 (a, line 3): src", "invalid CIDR"}},
	{"bad address", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, dst: [300.1.1.1]}]", []string{"rule 1 (line 2): dst", "invalid address"}},
	{"port zero", "defaults: {in: deny, out: allow}\nrules: [{name: z, action: allow, direction: in, protocol: tcp, dst_ports: [0]}]", []string{"rule 1 (z, line 2): dst_ports", "port 0 out of range"}},
	{"port too big", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, protocol: udp, src_ports: [65536]}]", []string{"src_ports", "65536 out of range"}},
	{"reversed range", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, protocol: tcp, dst_ports: [\"90-80\"]}]", []string{"reversed range"}},
	{"unknown ip list", "defaults: {in: deny, out: allow}\nrules: [{name: x, action: allow, direction: in, src: [\"@nope\"]}]", []string{"rule 1 (x, line 2): src", `unknown ip list "nope"`}},
	{"unknown port list", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, protocol: tcp, dst_ports: [\"@nope\"]}]", []string{`unknown port list "nope"`}},
	{"ports without proto", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, dst_ports: [22]}]", []string{"ports need protocol tcp or udp"}},
	{"bad action", "defaults: {in: deny, out: allow}\nrules: [{action: permit, direction: in}]", []string{`"permit" is not`}},
	{"missing direction", "defaults: {in: deny, out: allow}\nrules: [{action: allow}]", []string{"direction: missing"}},
	{"bad default", "defaults: {in: reject, out: allow}\nrules: []", []string{"defaults.in"}},
	{"mixed families", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, src: [10.0.0.1], dst: [\"::1\"]}]", []string{"no address family"}},
	{"icmp with v6", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, protocol: icmp, src: [\"2001:db8::/32\"]}]", []string{"no address family"}},
	{"bad state", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, state: [fresh]}]", []string{"state"}},
	{"bad rate", "defaults: {in: deny, out: allow}\nrules: [{action: deny, direction: in, log: true, log_rate: 5/fortnight}]", []string{"log_rate"}},
	{"bad iface", "defaults: {in: deny, out: allow}\nrules: [{action: deny, direction: in, interface: \"eth*\"}]", []string{"interface"}},
	{"duplicate name", "defaults: {in: deny, out: allow}\nrules: [{name: a, action: deny, direction: in}, {name: a, action: deny, direction: out}]", []string{"already used by rule 1"}},
	{"bad list cidr", "defaults: {in: deny, out: allow}\nip_lists: {a: [nope]}\nrules: []", []string{"ip_lists.a[0]"}},
	{"bad recon", "defaults: {in: deny, out: allow}\nrecon: {ports: 1}\nrules: []", []string{"recon: ports"}},
	{"two errors", "defaults: {in: deny, out: allow}\nrules: [{action: allow, direction: in, src: [x]}, {action: allow, direction: in, protocol: tcp, dst_ports: [0]}]", []string{"rule 1 (line 2): src", "rule 2 (line 2): dst_ports"}},
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodeYAML([]byte(tc.yaml))
			if err == nil {
				_, _, err = Compile(p, Options{})
			}
			if err == nil {
				t.Fatalf("Compile(%q) = nil error, want %q", tc.yaml, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Compile(%q) = %v, want it to mention %q", tc.yaml, err, w)
				}
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	y := `
defaults: {in: deny, out: allow}
ip_lists: {unused: [10.0.0.1]}
rules:
  - {name: all-ssh, action: allow, direction: in, protocol: tcp, dst_ports: [22]}
  - {name: some-ssh, action: deny, direction: in, protocol: tcp, src: [10.0.0.0/8], dst_ports: [22]}
  - {name: web, action: allow, direction: in, protocol: tcp, dst_ports: [80]}
  - {name: web-again, action: allow, direction: in, protocol: tcp, src: [203.0.113.1], dst_ports: [80]}
  - {name: fa, action: force-allow, direction: in, protocol: tcp, src: [192.0.2.0/24]}
  - {name: deny-net, action: deny, direction: in, src: [192.0.2.0/25, 198.51.100.0/24]}
`
	p, err := DecodeYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	_, warns, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"contradicts": {1, 2}, "redundant": {3, 4}, "overridden by force-allow": {5, 6}, "ip_lists.unused": nil}
	for key, rules := range want {
		found := false
		for _, w := range warns {
			if strings.Contains(w.Message, key) && equalInts(w.Rules, rules) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning %q with rules %v in %q", key, rules, warns)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEvaluate(t *testing.T) {
	b, err := os.ReadFile("testdata/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := mustCompile(t, string(b))
	a := netip.MustParseAddr
	host, host6 := a("10.9.9.9"), a("2001:db8:9::9")
	cases := []struct {
		name    string
		conn    Conn
		allowed bool
		rule    string // deciding rule name, "" for defaults/stateful
	}{
		{"ssh from admin", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("10.1.2.3"), Dst: host, DstPort: 22}, true, "ssh-admins"},
		{"ssh from admin v6", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("2001:db8:1::5"), Dst: host6, DstPort: 22}, true, "ssh-admins"},
		{"ssh from elsewhere", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("203.0.113.5"), Dst: host, DstPort: 22}, false, "ssh-others"},
		{"ssh from elsewhere v6", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("2001:db8:2::5"), Dst: host6, DstPort: 22}, false, "ssh-others"},
		{"web range", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("203.0.113.5"), Dst: host, DstPort: 8080}, true, "web"},
		{"udp 80 default", Conn{Direction: DirIn, Protocol: ProtoUDP, Src: a("203.0.113.5"), Dst: host, DstPort: 80}, false, ""},
		{"scanner denied", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("192.0.2.9"), Dst: host, DstPort: 80}, false, "scanners"},
		{"force-allow beats deny", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("192.0.2.7"), Dst: host, DstPort: 9100}, true, "monitoring"},
		{"established", Conn{Direction: DirIn, Protocol: ProtoTCP, Src: a("203.0.113.5"), Dst: host, DstPort: 5555, State: CtEstablished}, true, ""},
		{"loopback", Conn{Direction: DirIn, Protocol: ProtoUDP, Src: a("127.0.0.1"), Dst: a("127.0.0.1"), DstPort: 5, Interface: "lo"}, true, "loopback"},
		{"icmp", Conn{Direction: DirIn, Protocol: ProtoICMP, Src: a("203.0.113.5"), Dst: host}, true, "ping"},
		{"icmpv6", Conn{Direction: DirIn, Protocol: ProtoICMPv6, Src: a("2001:db8:2::5"), Dst: host6}, true, "ping6"},
		{"out default", Conn{Direction: DirOut, Protocol: ProtoUDP, Src: host, Dst: a("9.9.9.9"), DstPort: 53}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := c.Evaluate(tc.conn)
			name := ""
			if d.Rule != nil {
				name = d.Rule.Name
			}
			if d.Allowed != tc.allowed || name != tc.rule {
				t.Errorf("Evaluate(%+v) = allowed %v by %q (%s), want %v by %q", tc.conn, d.Allowed, name, d.Reason, tc.allowed, tc.rule)
			}
		})
	}
}

func TestManagementKeptOpen(t *testing.T) {
	p, err := DecodeYAML([]byte("defaults: {in: deny, out: deny}\nrules: []"))
	if err != nil {
		t.Fatal(err)
	}
	mgr := netip.MustParseAddrPort("10.0.0.5:4443")
	c, _, err := Compile(p, Options{Management: []netip.AddrPort{mgr}})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Evaluate(Conn{Direction: DirOut, Protocol: ProtoTCP, Src: netip.MustParseAddr("10.0.0.9"), Dst: mgr.Addr(), DstPort: 4443})
	if !d.Allowed || d.Rule == nil || d.Rule.Index != 0 {
		t.Errorf("management connection: %+v, want allowed by the implicit rule", d)
	}
	p.ManagementOverride = true
	c, warns, err := Compile(p, Options{Management: []netip.AddrPort{mgr}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Evaluate(Conn{Direction: DirOut, Protocol: ProtoTCP, Src: netip.MustParseAddr("10.0.0.9"), Dst: mgr.Addr(), DstPort: 4443}); d.Allowed {
		t.Errorf("with override the management connection is still allowed: %+v", d)
	}
	if len(warns) == 0 || !strings.Contains(warns[len(warns)-1].Message, "management") {
		t.Errorf("override gave no warning: %v", warns)
	}
}

// FuzzCompile checks that no input makes decoding or compiling panic, and
// that a policy that compiles evaluates without panicking.
func FuzzCompile(f *testing.F) {
	for _, tc := range badCases {
		f.Add([]byte(tc.yaml))
	}
	for _, p := range []string{"testdata/web.yaml", "testdata/web.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeYAML(b)
		if err != nil {
			if p, err = DecodeJSON(b); err != nil {
				return
			}
		}
		c, _, err := Compile(p, Options{})
		if err != nil {
			return
		}
		for _, d := range []Direction{DirIn, DirOut} {
			c.Evaluate(Conn{Direction: d, Protocol: ProtoTCP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), DstPort: 22})
		}
	})
}
