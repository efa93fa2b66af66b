package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/event"
	builtin "github.com/mamori-sec/mamori/rules/integrity"
)

var parseCases = []struct {
	name, yaml string
	wantErr    string // substring; "" = ok
}{
	{"minimal", "rules:\n  - path: /etc\n", ""},
	{"full", `name: x
version: 1
defaults:
  attributes: [meta]
  severity: high
rules:
  - path: /etc
    depth: 2
    include: ["*.conf"]
    exclude: ["/etc/**/cache"]
    attributes: [sha256, blake3, xxh3, size]
    severity: critical
    expected_changes: [mtime, added]
    cross_mounts: true
`, ""},
	{"unknown top key", "rulez: []\nrules:\n  - path: /etc\n", "t.yaml:1: policy: unknown field \"rulez\""},
	{"unknown rule key", "rules:\n  - path: /etc\n    atributes: [size]\n", "t.yaml:3: rule: unknown field \"atributes\""},
	{"relative path", "rules:\n  - path: etc\n", "t.yaml:2: path \"etc\" must be absolute"},
	{"bad attribute", "rules:\n  - path: /etc\n    attributes: [sha1]\n", "t.yaml:2: rule /etc: field attributes: unknown attribute \"sha1\""},
	{"bad severity", "rules:\n  - path: /etc\n    severity: huge\n", "field severity"},
	{"bad depth", "rules:\n  - path: /etc\n    depth: -3\n", "depth -3"},
	{"bad glob", "rules:\n  - path: /etc\n    exclude: [\"[\"]\n", "invalid glob"},
	{"bad yaml", "rules: [\n", "t.yaml: parsing yaml"},
	{"no rules", "name: x\n", "no rules"},
	{"bad version", "version: 2\nrules:\n  - path: /etc\n", "t.yaml:1: field version"},
	{"depth wrong type", "rules:\n  - path: /etc\n    depth: deep\n", "t.yaml:2: decoding rule"},
	{"everything expected", "rules:\n  - path: /etc\n    attributes: [size]\n    expected_changes: [size]\n", ""},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml), true)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.yaml, err, tc.wantErr)
			}
		})
	}
}

func TestBadRuleDoesNotStopGoodOnes(t *testing.T) {
	y := "rules:\n  - path: /etc\n  - path: relative\n  - path: /bin\n    attributes: [nope]\n  - path: /usr\n"
	p, err := Parse("t.yaml", []byte(y), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 2 || len(p.Warnings) != 2 {
		t.Errorf("non-strict Parse: %d rules, warnings %v; want 2 and 2", len(p.Rules), p.Warnings)
	}
	if _, err := Parse("t.yaml", []byte(y), true); err == nil {
		t.Error("strict Parse accepted a bad rule")
	}
}

func TestRuleFields(t *testing.T) {
	p, err := Parse("t.yaml", []byte(parseCases[1].yaml), true)
	if err != nil {
		t.Fatal(err)
	}
	r := p.RuleAt("/etc")
	want := AttrSHA256 | AttrBLAKE3 | AttrXXH3 | AttrSize | AttrType
	if r.Attrs != want || r.Severity != event.SeverityCritical || r.Depth != 2 || !r.CrossMounts || !r.ExpectNew || r.Expected != AttrMTime {
		t.Errorf("rule = %+v (attrs %s), want attrs %s, critical, depth 2, cross mounts, expect new, mtime expected", r, r.Attrs, want)
	}
}

func TestMatch(t *testing.T) {
	r := &Rule{Path: "/home", Depth: 3, Include: []string{"*/.ssh/authorized_keys"}, Exclude: []string{"*.swp", "/home/skip"}}
	cases := []struct {
		path         string
		depth        int
		dir          bool
		record, desc bool
	}{
		{"/home/a", 1, true, false, true},
		{"/home/a/.ssh/authorized_keys", 3, false, true, false},
		{"/home/a/.ssh/x.swp", 3, false, false, false},
		{"/home/skip", 1, true, false, false},
		{"/home/a/b/c/d", 4, true, false, false},
		{"/home/a/.ssh", 2, true, false, true},
	}
	for _, c := range cases {
		rec, desc := r.Match(c.path, c.depth, c.dir)
		if rec != c.record || desc != c.desc {
			t.Errorf("Match(%q, %d, %v) = %v, %v; want %v, %v", c.path, c.depth, c.dir, rec, desc, c.record, c.desc)
		}
	}
}

func TestBuiltinLinuxPolicy(t *testing.T) {
	p, err := Parse(builtin.LinuxName, builtin.Linux, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"/etc/passwd", "/etc/shadow", "/etc/sudoers.d", "/etc/ssh", "/etc/ld.so.preload", "/boot", "/usr/lib/modules", "/root/.ssh", "/home", "/etc/pam.d", "/var/spool/cron"} {
		if p.RuleAt(must) == nil {
			t.Errorf("builtin policy has no rule for %s", must)
		}
	}
	if r := p.RuleFor("/etc/ssh/sshd_config"); r == nil || r.Path != "/etc/ssh" || r.Severity != event.SeverityHigh {
		t.Errorf("RuleFor(/etc/ssh/sshd_config) = %+v", r)
	}
}

func TestParseMany(t *testing.T) {
	user, err := os.ReadFile("testdata/override.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseMany("merged", map[string][]byte{"builtin": builtin.Linux, "testdata/override.yaml": user}, []string{"builtin", "testdata/override.yaml"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.RuleAt("/etc/resolv.conf"); r == nil || r.Severity != event.SeverityInfo || r.Source != "testdata/override.yaml:3" {
		t.Errorf("override rule = %+v", r)
	}
	if p.RuleAt("/srv/app") == nil {
		t.Error("user rule /srv/app missing")
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.yaml)
	}
	f.Add(string(builtin.Linux))
	f.Fuzz(func(t *testing.T, y string) {
		p, err := Parse("fuzz.yaml", []byte(y), false)
		if err != nil {
			return
		}
		for _, r := range p.Rules {
			if r.Path == "" || r.Path[0] != '/' || r.Attrs == 0 {
				t.Fatalf("accepted invalid rule %+v", r)
			}
			r.Match(r.Path+"/x", 1, false)
		}
		_ = p.Digest()
	})
}

// TestDocExample: the example in the package documentation loads.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var y []string
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(line, "//\tname: web"):
			in = true
		case in && !strings.HasPrefix(line, "//\t"):
			in = false
		}
		if in {
			y = append(y, strings.TrimPrefix(line, "//\t"))
		}
	}
	p, err := Parse("doc.go example", []byte(strings.Join(y, "\n")), true)
	if err != nil {
		t.Fatalf("doc example: %v\n%s", err, strings.Join(y, "\n"))
	}
	if len(p.Rules) != 2 || p.RuleAt("/srv/www/logs").ExpectNew != true {
		t.Errorf("doc example rules: %+v", p.Rules)
	}
}
