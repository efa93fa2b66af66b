package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/mamori-sec/mamori/event"
)

// Policy is a compiled, validated set of rules. It is immutable once built.
type Policy struct {
	Name  string
	Rules []*Rule // sorted by path
	// Warnings are the rules dropped because they were invalid (non-strict
	// loading): a bad rule never stops the good ones.
	Warnings []error

	byPath map[string]*Rule
}

// Rule is one watched path and how to watch it.
type Rule struct {
	Path        string // absolute, clean, logical (before any --root)
	Depth       int    // levels below Path to descend; -1 unlimited, 0 the path only
	Include     []string
	Exclude     []string
	Attrs       Attr // recorded and compared: the watched attributes minus the expected ones
	Expected    Attr // attributes expected to change (not compared)
	ExpectNew   bool // new files under the rule are expected (caches, spools)
	ExpectGone  bool // removed files under the rule are expected
	Severity    event.Severity
	CrossMounts bool
	// AlwaysRehash: never skip hashing on unchanged metadata, even when a
	// check runs with --trust-metadata.
	AlwaysRehash bool
	Source       string // file:line the rule came from
}

// Unlimited is the Depth of a rule that descends without limit.
const Unlimited = -1

// New builds a policy from rules, validating each. With strict, the first
// invalid rule is an error; otherwise invalid rules are dropped and listed
// in Warnings. Rules with the same path: the later one wins, so user files
// given after the shipped defaults override them.
func New(name string, rules []*Rule, strict bool) (*Policy, error) {
	p := &Policy{Name: name, byPath: map[string]*Rule{}}
	for _, r := range rules {
		if err := r.validate(); err != nil {
			if strict {
				return nil, err
			}
			p.Warnings = append(p.Warnings, err)
			continue
		}
		p.byPath[r.Path] = r
	}
	for _, r := range p.byPath {
		p.Rules = append(p.Rules, r)
	}
	sort.Slice(p.Rules, func(i, j int) bool { return p.Rules[i].Path < p.Rules[j].Path })
	if len(p.Rules) == 0 {
		return nil, fmt.Errorf("policy %s: no valid rules", name)
	}
	return p, nil
}

func (r *Rule) validate() error {
	where := r.Source
	if where == "" {
		where = "rule"
	}
	if r.Path == "" || !path.IsAbs(r.Path) {
		return fmt.Errorf("%s: path %q must be absolute", where, r.Path)
	}
	r.Path = path.Clean(r.Path)
	if r.Depth < Unlimited {
		return fmt.Errorf("%s: rule %s: depth %d must be -1 (unlimited) or ≥ 0", where, r.Path, r.Depth)
	}
	for _, g := range append(append([]string{}, r.Include...), r.Exclude...) {
		if !doublestar.ValidatePattern(g) {
			return fmt.Errorf("%s: rule %s: invalid glob %q", where, r.Path, g)
		}
	}
	if r.Attrs == 0 {
		return fmt.Errorf("%s: rule %s: no attributes left to watch", where, r.Path)
	}
	return nil
}

// RuleAt returns the rule whose path is exactly p, or nil. The walker uses
// it to hand a subtree over to the more specific rule that owns it.
func (p *Policy) RuleAt(path string) *Rule { return p.byPath[path] }

// RuleFor returns the most specific rule covering path, or nil.
func (p *Policy) RuleFor(path string) *Rule {
	for q := path; ; q = parent(q) {
		if r := p.byPath[q]; r != nil {
			return r
		}
		if q == "/" {
			return nil
		}
	}
}

// Roots returns the rule paths the walker starts from: every rule path.
// A rule nested in another still walks its own subtree, with its own
// settings; the outer rule skips it.
func (p *Policy) Roots() []*Rule { return p.Rules }

// Digest identifies the policy's effective content, so a baseline built
// under another policy can be recognised.
func (p *Policy) Digest() string {
	h := sha256.New()
	for _, r := range p.Rules {
		fmt.Fprintf(h, "%s\x00%d\x00%q\x00%q\x00%d\x00%d\x00%v\x00%v\x00%v\x00%v\n", r.Path, r.Depth, r.Include, r.Exclude, r.Attrs, r.Expected, r.ExpectNew, r.ExpectGone, r.CrossMounts, r.AlwaysRehash)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Match says whether the item at p (under r, d levels below r.Path) is
// recorded, and whether the walker descends into it if it is a directory.
func (r *Rule) Match(p string, d int, isDir bool) (record, descend bool) {
	if r.Depth != Unlimited && d > r.Depth {
		return false, false
	}
	base := path.Base(p)
	rel := strings.TrimPrefix(strings.TrimPrefix(p, r.Path), "/")
	for _, g := range r.Exclude {
		if globMatch(g, p, rel, base) {
			return false, false
		}
	}
	descend = isDir && (r.Depth == Unlimited || d < r.Depth)
	if len(r.Include) == 0 {
		return true, descend
	}
	for _, g := range r.Include {
		if globMatch(g, p, rel, base) {
			return true, descend
		}
	}
	return false, descend
}

// globMatch: a pattern without "/" matches the base name, one starting with
// "/" the whole path, any other the path relative to the rule.
func globMatch(g, full, rel, base string) bool {
	var s string
	switch {
	case strings.HasPrefix(g, "/"):
		s = full
	case strings.Contains(g, "/"):
		s = rel
	default:
		s = base
	}
	ok, _ := doublestar.Match(g, s)
	return ok
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
