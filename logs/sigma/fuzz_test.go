package sigma

import (
	"os"
	"testing"
)

func FuzzCondition(f *testing.F) {
	for _, s := range []string{"a", "a and b", "a or not b", "(a or b) and not c", "1 of sel*", "all of them",
		"2 of s*", "not not a", "a | count() > 3", "((a)", "a and", "any of x"} {
		f.Add(s)
	}
	searches := map[string]node{"a": constNode(true), "b": constNode(false), "c": constNode(true), "sel1": constNode(true), "s2": constNode(false)}
	f.Fuzz(func(t *testing.T, cond string) {
		n, err := ParseCondition(cond, searches)
		if err == nil && n == nil {
			t.Fatalf("ParseCondition(%q) = nil, nil", cond)
		}
		if n != nil {
			n.eval(rec(nil, ""))
		}
	})
}

func FuzzRule(f *testing.F) {
	seeds := []string{
		head + "  s: {user.name|contains|all: [a, b]}\n  condition: s",
		head + "  s: {source.ip|cidr: 10.0.0.0/8}\n  k: [x, y]\n  condition: s or k",
		head + "  s: {data|base64offset|contains: abc}\n  condition: 1 of them",
		"title: c\ncorrelation: {type: value_count, rules: [x], group-by: [a], timespan: 5m, condition: {field: u, gte: 2}}",
		"title: [broken",
	}
	if b, err := os.ReadFile("../../rules/sigma/ssh_bruteforce.yml"); err == nil {
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, y string) {
		s := NewSet(false)
		_ = s.Add("fuzz.yml", []byte(y))
		_ = s.Finish()
		rt := NewRuntime(s)
		r := rec(map[string]string{"user.name": "a", "source.ip": "10.1.2.3", "data": "YWJj"}, "x y")
		rt.Process(r, func(Alert) {})
	})
}
