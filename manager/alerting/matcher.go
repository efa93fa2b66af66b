package alerting

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mamori-sec/mamori/event"
)

// Rule is one compiled rule. Spec is the rule as written, for the caller's
// use (name, notifiers); the rest is precomputed for Match.
type Rule struct {
	Spec RuleSpec

	enabled  bool
	modules  []string
	kinds    globs
	rules    globs
	groups   []string
	tags     []string
	comps    []string
	contains string // lower-cased
	minSev   event.Severity
}

// Matcher holds one tenant's compiled rules. It is immutable and safe for
// concurrent use; a rule change compiles a new Matcher and swaps it.
type Matcher struct {
	rules []*Rule
	byID  map[RuleID]*Rule
}

// Compile validates and compiles specs. A bad rule never stops the good
// ones: the Matcher holds every rule that compiled and the error joins one
// *RuleError per rule that did not (nil when all did). Callers that want
// all-or-nothing treat a non-nil error as fatal.
func Compile(specs []RuleSpec) (*Matcher, error) {
	m := &Matcher{byID: make(map[RuleID]*Rule, len(specs))}
	var errs []error
	for i := range specs {
		s := specs[i]
		if err := s.Validate(); err != nil {
			errs = append(errs, withPos(err, i, s.ID))
			continue
		}
		if _, dup := m.byID[s.ID]; dup {
			errs = append(errs, &RuleError{Index: i, ID: s.ID, Field: "id", Err: ErrDuplicateID})
			continue
		}
		r := compileRule(s)
		m.rules = append(m.rules, r)
		m.byID[s.ID] = r
	}
	if len(errs) > 0 {
		return m, fmt.Errorf("compiling alert rules: %w", errors.Join(errs...))
	}
	return m, nil
}

func compileRule(s RuleSpec) *Rule {
	s.Modules, s.Kinds, s.Rules = slices.Clone(s.Modules), slices.Clone(s.Kinds), slices.Clone(s.Rules)
	s.Groups, s.Tags, s.Computers = slices.Clone(s.Groups), slices.Clone(s.Tags), slices.Clone(s.Computers)
	s.Notifiers = slices.Clone(s.Notifiers)
	return &Rule{
		Spec:     s,
		enabled:  s.Enabled == nil || *s.Enabled,
		modules:  s.Modules,
		kinds:    compileGlobs(s.Kinds),
		rules:    compileGlobs(s.Rules),
		groups:   s.Groups,
		tags:     s.Tags,
		comps:    s.Computers,
		contains: strings.ToLower(s.Contains),
		minSev:   event.Severity(s.MinSeverity),
	}
}

// Rule returns the compiled rule with that ID.
func (m *Matcher) Rule(id RuleID) (*Rule, bool) {
	r, ok := m.byID[id]
	return r, ok
}

// Rules returns the compiled rules in their original order.
func (m *Matcher) Rules() []*Rule { return slices.Clone(m.rules) }

// Len is the number of rules compiled, enabled or not.
func (m *Matcher) Len() int { return len(m.rules) }

// Match returns the IDs of the enabled rules the event triggers on that
// computer, in rule order; nil when none does.
func (m *Matcher) Match(ev *event.Event, c Computer) []RuleID {
	var ids []RuleID
	for _, r := range m.rules {
		if r.Matches(ev, c) {
			ids = append(ids, r.Spec.ID)
		}
	}
	return ids
}

// Matches reports whether this rule triggers on the event; a disabled rule
// never does. The cheap comparisons come first: most events fail on
// severity or module.
func (r *Rule) Matches(ev *event.Event, c Computer) bool {
	if !r.enabled || ev.Severity < r.minSev {
		return false
	}
	if len(r.modules) > 0 && !slices.Contains(r.modules, ev.Module) {
		return false
	}
	if len(r.kinds) > 0 && !r.kinds.any(string(ev.Kind)) {
		return false
	}
	if len(r.rules) > 0 && (ev.Rule == nil || !r.rules.any(ev.Rule.ID)) {
		return false
	}
	if len(r.comps) > 0 && !slices.Contains(r.comps, c.ID) {
		return false
	}
	if len(r.groups) > 0 && !slices.Contains(r.groups, c.Group) {
		return false
	}
	for _, t := range r.tags {
		if !slices.Contains(c.Tags, t) {
			return false
		}
	}
	if r.contains != "" && !textContains(ev, r.contains) {
		return false
	}
	return true
}

// textContains looks for the lower-cased needle in the event's human text.
func textContains(ev *event.Event, needle string) bool {
	has := func(s string) bool { return s != "" && containsFold(s, needle) }
	if has(ev.Message) || has(ev.Raw) {
		return true
	}
	if ev.Rule != nil && (has(ev.Rule.Name) || has(ev.Rule.ID)) {
		return true
	}
	if ev.File != nil && has(ev.File.Path) {
		return true
	}
	if ev.Process != nil && (has(ev.Process.Cmdline) || has(ev.Process.Exe)) {
		return true
	}
	for _, e := range ev.Evidence {
		if has(e) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case needle, ignoring
// case. For an ASCII needle it compares in place, without the allocation
// of strings.ToLower on every field of every event; other needles take the
// Unicode path.
func containsFold(s, needle string) bool {
	for i := 0; i < len(needle); i++ {
		if needle[i] >= utf8.RuneSelf {
			return strings.Contains(strings.ToLower(s), needle)
		}
	}
	n := len(needle)
	if n == 0 {
		return true
	}
	first := needle[0]
	for i := 0; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != first {
			continue
		}
		j := 1
		for j < n && lowerASCII(s[i+j]) == needle[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
