package policy

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// withSplitMin lowers the split threshold for the duration of a test so
// that small inputs take the parallel path.
func withSplitMin(t testing.TB, n int) {
	old := splitMinRules
	splitMinRules = n
	t.Cleanup(func() { splitMinRules = old })
}

// decodeWhole is the reference: the plain strict decoder, no split.
func decodeWhole(t testing.TB, src []byte) (*Policy, error) {
	t.Helper()
	p, err := decodeYAMLWhole(src)
	if p != nil {
		p.yamlSrc = nil
	}
	return p, err
}

func TestSplitMatchesWhole(t *testing.T) {
	withSplitMin(t, 1)
	for _, tc := range []struct {
		name, src string
		split     bool // whether the split path must be taken
	}{
		{"testdata", string(mustRead(t, "testdata/web.yaml")), true},
		{"compact", "defaults: {in: deny, out: allow}\nrules:\n- {action: allow, direction: in}\n- action: deny\n  direction: out\n  dst: [10.0.0.0/8]\nstateful: false\n", true},
		{"comments", "rules: # the rules\n  # first\n  - {action: allow, direction: in}\n\n  - {action: deny, direction: in, src: [\"@a\"]}   # second\nip_lists: {a: [192.0.2.0/24]}\ndefaults: {in: deny, out: allow}\n", true},
		{"multiline flow", "defaults: {in: deny, out: allow}\nrules:\n  - {action: allow,\n     direction: in}\n  - {action: deny, direction: in}\n", true},
		{"folded quote", "rules:\n  - {action: allow, direction: in, comment: \"a\n  - b\"}\n  - {action: deny, direction: in}\n", false},
		{"anchor", "rules:\n  - &a {action: allow, direction: in}\n  - *a\n", false},
		{"two documents", "rules:\n  - {action: allow, direction: in}\n---\nrules: []\n", false},
		{"duplicate rules", "rules:\n  - {action: allow, direction: in}\nrules:\n  - {action: deny, direction: in}\n", false},
		{"flow rules", "rules: [{action: allow, direction: in}]\n", false},
		{"unknown field", "rules:\n  - {action: allow, direction: in, port: 22}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeYAMLSplit([]byte(tc.src))
			if ok != tc.split {
				t.Fatalf("split used = %v, want %v", ok, tc.split)
			}
			want, err := decodeWhole(t, []byte(tc.src))
			if ok {
				if err != nil {
					t.Fatalf("split decoded what the whole decoder rejects (%v)", err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("split = %+v\nwhole = %+v", got, want)
				}
			}
			// DecodeYAML agrees with the whole decoder either way.
			p, derr := DecodeYAML([]byte(tc.src))
			if (derr == nil) != (err == nil) {
				t.Fatalf("DecodeYAML err = %v, whole decoder err = %v", derr, err)
			}
			if derr == nil {
				p.yamlSrc = nil
				if !reflect.DeepEqual(p, want) {
					t.Fatalf("DecodeYAML = %+v\nwhole = %+v", p, want)
				}
			}
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzSplitMatchesWhole is a differential fuzz target: whenever the
// parallel split decodes a document, the plain decoder must decode it to
// exactly the same policy.
func FuzzSplitMatchesWhole(f *testing.F) {
	withSplitMin(f, 1)
	f.Add(string(mustRead(f, "testdata/web.yaml")))
	f.Add("rules:\n- {action: allow, direction: in}\n- action: deny\n  direction: out\nstateful: false\n")
	f.Add("rules:\n  - {action: allow,\n     direction: in}\n  - {action: deny, comment: \"x\n  - y\"}\n")
	f.Add("rules: # c\n  - |\n    text\n  - {action: deny}\ndefaults: {in: deny}\n")
	f.Add("rules:\n  - {name: \"d0\", action: deny, direction: in, protocol: \"tcp\", src: [\"11.0.0.0/24\"], dst_ports: [1024, '8000-8080'], log: true}  # x\n  - {src: [], state: [new], comment: 'a b', interface: lo, log_rate: 5/minute}\n")
	f.Add("rules:\n  - {name: null, log: yes, src: [-1, @a, 1:2]}\n  - {name: ~}\n")
	f.Add("rules:\r\n  - {name: a}\r- {name: b}\r\n  # c\x10\n  - {}\n")
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 || strings.Count(src, "\n") > 200 {
			return
		}
		got, ok := decodeYAMLSplit([]byte(src))
		if !ok {
			return
		}
		want, err := decodeWhole(t, []byte(src))
		if err != nil {
			t.Fatalf("split decoded %q, the whole decoder rejects it: %v", src, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: split = %+v, whole = %+v", src, got, want)
		}
	})
}

// TestFlowRuleMatchesYAML compares the one-line flow decoder with yaml.v3
// item by item, including the lines it must leave to yaml.v3.
func TestFlowRuleMatchesYAML(t *testing.T) {
	for _, tc := range []struct {
		line string
		fast bool
	}{
		{`- {name: "d0", action: "deny", direction: "in", protocol: "tcp", src: ["11.0.0.0/24"], dst_ports: [1024]}`, true},
		{`- {name: web, action: allow, direction: in, protocol: tcp, dst_ports: [80, '8000-8080', "@web"], log: true, log_rate: 5/minute}   # web`, true},
		{`-   { src: [], state: [new, established], interface: eth0, comment: 'x', log: false }`, true},
		{`- {}`, true},
		{`- {name: 007, comment: 1e3, protocol: .inf}`, true},
		{`- {name: null}`, false},         // null: the empty string
		{`- {name: ~}`, false},            // same
		{`- {log: yes}`, false},           // a YAML 1.1 bool
		{`- {src: [@admins]}`, false},     // @ cannot start a plain scalar
		{`- {src: ["a\"b"]}`, false},      // escapes
		{`- {comment: 'it''s'}`, false},   // quote escape
		{`- {name: a, name: b}`, false},   // duplicate key
		{`- {port: 22}`, false},           // unknown field
		{`- {name: two words}`, false},    // plain with a space
		{`- {src: [fd99:1::/64]}`, false}, // plain with ':'
		{`- {name: a,}`, false},           // trailing comma
		{`- {name: a}#c`, false},          // not a comment without a space
		{`- {dst_ports: 22}`, false},      // not a sequence
		{`- {src: [-1]}`, false},          // leading '-'
		{`- {name: a b: c}`, false},       // nested mapping
		{`- name: a`, false},              // block style
		{`- {name: "é"}`, false},          // non-ASCII
		{`- {name: a, action: [allow]}`, false},
	} {
		var got Rule
		ok := decodeFlowRule([]byte(tc.line), &got)
		if ok != tc.fast {
			t.Errorf("%s: fast path = %v, want %v", tc.line, ok, tc.fast)
			continue
		}
		var want []Rule
		err := decodeStrict([]byte(tc.line+"\n"), &want)
		if ok {
			if err != nil || len(want) != 1 || !reflect.DeepEqual(got, want[0]) {
				t.Errorf("%s: fast = %+v, yaml.v3 = %+v (%v)", tc.line, got, want, err)
			}
		}
	}
}

// FuzzFlowRuleMatchesYAML: whenever the one-line flow decoder accepts a
// line, yaml.v3 decodes it as a rules item to exactly the same Rule.
func FuzzFlowRuleMatchesYAML(f *testing.F) {
	f.Add(`- {name: "d0", action: deny, direction: in, protocol: tcp, src: ["11.0.0.0/24"], dst_ports: [1024, '8000-8080'], log: true}  # c`)
	f.Add(`- {src: [], state: [new], comment: 'a', interface: lo, log_rate: 5/minute, name: 1e3}`)
	f.Add(`-  { name: .inf , log: false }`)
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n\r") {
			return
		}
		var got Rule
		if !decodeFlowRule([]byte(line), &got) {
			return
		}
		var want []Rule
		if err := decodeStrict([]byte(line+"\n"), &want); err != nil {
			t.Fatalf("%q: flow decoder accepted, yaml.v3 says %v", line, err)
		}
		if len(want) != 1 || !reflect.DeepEqual(got, want[0]) {
			t.Fatalf("%q: flow = %+v, yaml.v3 = %+v", line, got, want)
		}
	})
}
