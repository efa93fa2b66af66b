package sigma

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/logs/decode"
)

func rec(fields map[string]string, raw string) *decode.Record {
	r := &decode.Record{Product: "linux", Service: "sshd", Raw: raw}
	for k, v := range fields {
		r.SetExtra(k, v)
	}
	return r
}

func mustRule(t *testing.T, y string) *Rule {
	t.Helper()
	s := NewSet(true)
	if err := s.Add("test.yml", []byte(y)); err != nil {
		t.Fatalf("loading rule: %v", err)
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	return s.Rules[0]
}

const head = "title: t\nlogsource: {product: linux, service: sshd}\ndetection:\n"

func TestModifiers(t *testing.T) {
	cases := []struct {
		name   string
		det    string
		fields map[string]string
		raw    string
		want   bool
	}{
		{"equal is case-insensitive", "  s: {user.name: ROOT}\n  condition: s", map[string]string{"user.name": "root"}, "", true},
		{"equal is whole-value", "  s: {user.name: roo}\n  condition: s", map[string]string{"user.name": "root"}, "", false},
		{"cased", "  s: {user.name|cased: ROOT}\n  condition: s", map[string]string{"user.name": "root"}, "", false},
		{"contains", "  s: {message|contains: 'Failed pass'}\n  condition: s", map[string]string{"message": "x failed password y"}, "", true},
		{"startswith", "  s: {message|startswith: fail}\n  condition: s", map[string]string{"message": "Failed x"}, "", true},
		{"endswith", "  s: {message|endswith: ssh2}\n  condition: s", map[string]string{"message": "Failed x ssh2"}, "", true},
		{"endswith miss", "  s: {message|endswith: ssh1}\n  condition: s", map[string]string{"message": "Failed x ssh2"}, "", false},
		{"contains all", "  s: {message|contains|all: [a1, b2]}\n  condition: s", map[string]string{"message": "xx b2 yy a1"}, "", true},
		{"contains all miss", "  s: {message|contains|all: [a1, b3]}\n  condition: s", map[string]string{"message": "xx b2 yy a1"}, "", false},
		{"list is or", "  s: {user.name: [bob, root]}\n  condition: s", map[string]string{"user.name": "root"}, "", true},
		{"wildcard star", "  s: {user.name: 'r*t'}\n  condition: s", map[string]string{"user.name": "ROOT"}, "", true},
		{"wildcard question", "  s: {user.name: 'r??t'}\n  condition: s", map[string]string{"user.name": "root"}, "", true},
		{"escaped star", "  s: {user.name: 'a\\*b'}\n  condition: s", map[string]string{"user.name": "a*b"}, "", true},
		{"escaped star literal", "  s: {user.name: 'a\\*b'}\n  condition: s", map[string]string{"user.name": "axxb"}, "", false},
		{"re", "  s: {user.name|re: '^r[o]+t$'}\n  condition: s", map[string]string{"user.name": "root"}, "", true},
		{"re case-sensitive", "  s: {user.name|re: '^ROOT$'}\n  condition: s", map[string]string{"user.name": "root"}, "", false},
		{"re i", "  s: {user.name|re|i: '^ROOT$'}\n  condition: s", map[string]string{"user.name": "root"}, "", true},
		{"cidr v4", "  s: {source.ip|cidr: 10.0.0.0/8}\n  condition: s", map[string]string{"source.ip": "10.3.98.76"}, "", true},
		{"cidr v6", "  s: {source.ip|cidr: '2001:db8::/32'}\n  condition: s", map[string]string{"source.ip": "2001:db8::1"}, "", true},
		{"cidr miss", "  s: {source.ip|cidr: 10.0.0.0/8}\n  condition: s", map[string]string{"source.ip": "11.0.0.1"}, "", false},
		{"base64", "  s: {data|base64: 'hello'}\n  condition: s", map[string]string{"data": "aGVsbG8="}, "", true},
		{"base64 contains", "  s: {data|base64|contains: 'hello'}\n  condition: s", map[string]string{"data": "xxaGVsbG8=yy"}, "", true},
		{"base64offset 0", "  s: {data|base64offset|contains: 'http://'}\n  condition: s", map[string]string{"data": "aHR0cDovL2V2aWw="}, "", true},
		{"base64offset 1", "  s: {data|base64offset|contains: 'http://'}\n  condition: s", map[string]string{"data": "eGh0dHA6Ly9ldmls"}, "", true},
		{"base64offset 2", "  s: {data|base64offset|contains: 'http://'}\n  condition: s", map[string]string{"data": "eHhodHRwOi8vZXZpbA=="}, "", true},
		{"exists true", "  s: {source.ip|exists: true}\n  condition: s", map[string]string{"source.ip": "1.2.3.4"}, "", true},
		{"exists false", "  s: {source.ip|exists: false}\n  condition: s", map[string]string{"user.name": "x"}, "", true},
		{"null", "  s: {source.ip: null}\n  condition: s", map[string]string{"user.name": "x"}, "", true},
		{"gt", "  s: {count|gt: 5}\n  condition: s", map[string]string{"count": "6"}, "", true},
		{"lte", "  s: {count|lte: 5}\n  condition: s", map[string]string{"count": "6"}, "", false},
		{"gte", "  s: {http.response.status_code|gte: 400}\n  condition: s", map[string]string{"http.response.status_code": "404"}, "", true},
		{"lt not number", "  s: {count|lt: 5}\n  condition: s", map[string]string{"count": "abc"}, "", false},
		{"fieldref", "  s: {user.name|fieldref: user.target.name}\n  condition: s", map[string]string{"user.name": "bob", "user.target.name": "bob"}, "", true},
		{"windash", "  s: {cmd|windash|contains: ' -enc '}\n  condition: s", map[string]string{"cmd": "p /enc x"}, "", true},
		{"alias c-ip", "  s: {c-ip: 1.2.3.4}\n  condition: s", map[string]string{"source.ip": "1.2.3.4"}, "", true},
		{"keywords", "  k: ['Failed password', 'Invalid user']\n  condition: k", nil, "sshd: failed PASSWORD for x", true},
		{"keywords miss", "  k: ['Failed password']\n  condition: k", nil, "Accepted password", false},
		{"keyword wildcard", "  k: ['Failed * for root']\n  condition: k", nil, "x Failed password for root y", true},
		{"missing field", "  s: {nothere: x}\n  condition: s", nil, "", false},
		{"list of maps", "  s:\n    - {a: 1}\n    - {b: 2}\n  condition: s", map[string]string{"b": "2"}, "", true},
		{"not", "  s: {a: 1}\n  condition: not s", map[string]string{"a": "2"}, "", true},
		{"and not", "  s: {a: 1}\n  f: {b: 2}\n  condition: s and not f", map[string]string{"a": "1", "b": "2"}, "", false},
		{"parens", "  a: {a: 1}\n  b: {b: 2}\n  c: {c: 3}\n  condition: a and (b or c)", map[string]string{"a": "1", "c": "3"}, "", true},
		{"precedence", "  a: {a: 1}\n  b: {b: 2}\n  c: {c: 3}\n  condition: a and b or c", map[string]string{"c": "3"}, "", true},
		{"1 of", "  sel_a: {a: 1}\n  sel_b: {b: 2}\n  condition: 1 of sel_*", map[string]string{"b": "2"}, "", true},
		{"all of", "  sel_a: {a: 1}\n  sel_b: {b: 2}\n  condition: all of sel_*", map[string]string{"b": "2"}, "", false},
		{"all of them", "  sel_a: {a: 1}\n  sel_b: {b: 2}\n  condition: all of them", map[string]string{"a": "1", "b": "2"}, "", true},
		{"them skips underscore", "  sel_a: {a: 1}\n  _x: {b: 2}\n  condition: all of them", map[string]string{"a": "1"}, "", true},
		{"condition list", "  a: {a: 1}\n  b: {b: 2}\n  condition: [a, b]", map[string]string{"b": "2"}, "", true},
		{"2 of", "  s1: {a: 1}\n  s2: {b: 2}\n  s3: {c: 3}\n  condition: 2 of s*", map[string]string{"a": "1", "c": "3"}, "", true},
		{"number value", "  s: {port: 22}\n  condition: s", map[string]string{"port": "22"}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRule(t, head+tc.det)
			got := r.Match(rec(tc.fields, tc.raw))
			if got != tc.want {
				t.Errorf("match(%v, %q) = %v, want %v", tc.fields, tc.raw, got, tc.want)
			}
		})
	}
}

func TestBadRulesAreSkipped(t *testing.T) {
	bad := []struct{ name, y, reason string }{
		{"unknown modifier", head + "  s: {a|frobnicate: 1}\n  condition: s", "unknown modifier"},
		{"broken yaml", "title: [unclosed\n", "parsing YAML"},
		{"unknown identifier", head + "  s: {a: 1}\n  condition: s and x", "unknown search identifier"},
		{"aggregation", head + "  s: {a: 1}\n  condition: s | count() by x > 5", "correlation"},
		{"missing title", "logsource: {product: linux}\ndetection:\n  s: {a: 1}\n  condition: s", "title"},
		{"bad re", head + "  s: {a|re: '('}\n  condition: s", "re"},
		{"bad cidr", head + "  s: {a|cidr: 'x/99'}\n  condition: s", "cidr"},
		{"unclosed paren", head + "  s: {a: 1}\n  condition: (s", "missing )"},
		{"correlation lt", "title: c\ncorrelation: {type: event_count, rules: [x], timespan: 1m, condition: {lt: 3}}", "window-end"},
		{"correlation unknown rule", "title: c\ncorrelation: {type: event_count, rules: [nope], timespan: 1m, condition: {gte: 3}}", "unknown rule"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSet(false)
			good := head + "  s: {a: 1}\n  condition: s"
			if err := s.Add("good.yml", []byte("title: good\nid: good-1\n"+good[len("title: t\n"):])); err != nil {
				t.Fatal(err)
			}
			if err := s.Add("bad.yml", []byte(tc.y)); err != nil {
				t.Fatalf("non-strict Add returned %v", err)
			}
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
			if len(s.Errors) != 1 || !strings.Contains(s.Errors[0].Error(), tc.reason) || !strings.Contains(s.Errors[0].Error(), "bad.yml") {
				t.Fatalf("errors = %v, want one naming bad.yml and %q", s.Errors, tc.reason)
			}
			if s.Lookup("good-1") == nil {
				t.Errorf("good rule did not load next to a bad one")
			}
			strict := NewSet(true)
			err := strict.Add("bad.yml", []byte(tc.y))
			if err == nil {
				err = strict.Finish()
			}
			if err == nil {
				t.Errorf("strict load of a bad rule succeeded")
			}
		})
	}
}

// TestCorrelationCases runs testdata/correlation/<case>/{rules.yml,
// input.txt, want.txt}: each input line is "SECONDS key=value …", want
// lists "SECONDS rule-name group" per expected alert.
func TestCorrelationCases(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/correlation/*")
	if len(dirs) == 0 {
		t.Fatal("no correlation cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			s := NewSet(true)
			if err := s.LoadPaths(filepath.Join(dir, "rules.yml")); err != nil {
				t.Fatal(err)
			}
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
			rt := NewRuntime(s)
			in, _ := os.ReadFile(filepath.Join(dir, "input.txt"))
			want, _ := os.ReadFile(filepath.Join(dir, "want.txt"))
			var got []string
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, l := range strings.Split(strings.TrimSpace(string(in)), "\n") {
				f := strings.Fields(l)
				if len(f) == 0 || strings.HasPrefix(l, "#") {
					continue
				}
				var sec int
				if _, err := fmtSscan(f[0], &sec); err != nil {
					t.Fatalf("bad input line %q", l)
				}
				r := &decode.Record{Product: "linux", Service: "sshd", Raw: l, Time: t0.Add(time.Duration(sec) * time.Second)}
				for _, kv := range f[1:] {
					k, v, _ := strings.Cut(kv, "=")
					r.SetExtra(k, v)
				}
				rt.Process(r, func(a Alert) {
					g := ""
					for _, k := range a.Rule.Correlation.GroupBy {
						g += a.Group[k]
					}
					got = append(got, strings.TrimSpace(strings.Join([]string{itoa(int(a.Time.Sub(t0) / time.Second)), a.Rule.Name, g}, " ")))
				})
			}
			gotS := strings.Join(got, "\n")
			wantS := strings.TrimSpace(string(want))
			if gotS != wantS {
				t.Errorf("alerts:\n%s\nwant:\n%s", gotS, wantS)
			}
		})
	}
}

// TestDistinctCount checks the scan/map hybrid against a naive count.
func TestDistinctCount(t *testing.T) {
	var b bucket
	var window []string
	naive := func() int {
		m := map[string]bool{}
		for _, v := range window {
			m[v] = true
		}
		return len(m)
	}
	seed := uint32(7)
	for i := 0; i < 5000; i++ {
		seed = seed*1664525 + 1013904223
		v := itoa(int(seed>>24) % 50)
		b.addValue(v)
		window = append(window, v)
		if seed%7 == 0 && len(window) > 0 {
			n := int(seed>>16)%len(window) + 1
			b.dropValues(n)
			window = window[n:]
		}
		if b.distinct != naive() {
			t.Fatalf("step %d: distinct = %d, want %d (window %d)", i, b.distinct, naive(), len(window))
		}
	}
}
