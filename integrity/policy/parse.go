package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mamori-sec/mamori/event"
)

// ruleSpec is one rule as written in YAML. Pointers tell "absent" from
// "zero" so rules inherit the file's defaults.
type ruleSpec struct {
	Path            string   `yaml:"path"`
	Depth           *int     `yaml:"depth"`
	Include         []string `yaml:"include"`
	Exclude         []string `yaml:"exclude"`
	Attributes      []string `yaml:"attributes"`
	Severity        string   `yaml:"severity"`
	ExpectedChanges []string `yaml:"expected_changes"`
	CrossMounts     *bool    `yaml:"cross_mounts"`
	AlwaysRehash    *bool    `yaml:"always_rehash"`
}

var (
	fileKeys = map[string]bool{"name": true, "version": true, "defaults": true, "rules": true}
	ruleKeys = map[string]bool{"path": true, "depth": true, "include": true, "exclude": true, "attributes": true, "severity": true, "expected_changes": true, "cross_mounts": true, "always_rehash": true}
)

// Parse decodes a YAML policy file named name. Unknown keys, bad values and
// invalid rules are errors carrying name:line; with strict false an invalid
// rule is dropped (listed in Policy.Warnings) and the others load.
func Parse(name string, data []byte, strict bool) (*Policy, error) {
	rules, pname, warns, err := parseRules(name, data, strict)
	if err != nil {
		return nil, err
	}
	if pname == "" {
		pname = strings.TrimSuffix(strings.TrimSuffix(baseName(name), ".yaml"), ".yml")
	}
	p, err := New(pname, rules, strict)
	if err != nil {
		return nil, err
	}
	p.Warnings = append(warns, p.Warnings...)
	return p, nil
}

// ParseMany loads several files as one policy (shipped defaults first, then
// user files and rule packs, later rules overriding earlier ones).
func ParseMany(name string, files map[string][]byte, order []string, strict bool) (*Policy, error) {
	var all []*Rule
	var warns []error
	for _, f := range order {
		rules, _, w, err := parseRules(f, files[f], strict)
		if err != nil {
			return nil, err
		}
		all = append(all, rules...)
		warns = append(warns, w...)
	}
	p, err := New(name, all, strict)
	if err != nil {
		return nil, err
	}
	p.Warnings = append(warns, p.Warnings...)
	return p, nil
}

func parseRules(name string, data []byte, strict bool) ([]*Rule, string, []error, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, "", nil, fmt.Errorf("%s: parsing yaml: %w", name, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, "", nil, fmt.Errorf("%s:%d: policy must be a mapping with name, defaults and rules", name, doc.Line)
	}
	top := doc.Content[0]
	if err := checkKeys(name, top, fileKeys, "policy"); err != nil {
		return nil, "", nil, err
	}
	var pname string
	defaults := ruleSpec{}
	var rulesNode *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "name":
			if err := v.Decode(&pname); err != nil {
				return nil, "", nil, fmt.Errorf("%s:%d: field name: %w", name, v.Line, err)
			}
		case "version":
			var ver int
			if err := v.Decode(&ver); err != nil || ver != 1 {
				return nil, "", nil, fmt.Errorf("%s:%d: field version: want 1", name, v.Line)
			}
		case "defaults":
			if err := checkKeys(name, v, ruleKeys, "defaults"); err != nil {
				return nil, "", nil, err
			}
			if err := v.Decode(&defaults); err != nil {
				return nil, "", nil, fmt.Errorf("%s:%d: field defaults: %w", name, v.Line, err)
			}
			if defaults.Path != "" {
				return nil, "", nil, fmt.Errorf("%s:%d: defaults cannot have a path", name, v.Line)
			}
		case "rules":
			if v.Kind != yaml.SequenceNode {
				return nil, "", nil, fmt.Errorf("%s:%d: field rules must be a list", name, v.Line)
			}
			rulesNode = v
		}
	}
	if rulesNode == nil {
		return nil, "", nil, fmt.Errorf("%s: no rules", name)
	}
	var rules []*Rule
	var warns []error
	for _, rn := range rulesNode.Content {
		r, err := compileRule(name, rn, defaults)
		if err != nil {
			if strict {
				return nil, "", nil, err
			}
			warns = append(warns, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, pname, warns, nil
}

func compileRule(file string, n *yaml.Node, def ruleSpec) (*Rule, error) {
	where := fmt.Sprintf("%s:%d", file, n.Line)
	if err := checkKeys(file, n, ruleKeys, "rule"); err != nil {
		return nil, err
	}
	var s ruleSpec
	if err := n.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: decoding rule: %w", where, err)
	}
	if s.Depth == nil {
		s.Depth = def.Depth
	}
	if s.Attributes == nil {
		s.Attributes = def.Attributes
	}
	if s.Severity == "" {
		s.Severity = def.Severity
	}
	if s.ExpectedChanges == nil {
		s.ExpectedChanges = def.ExpectedChanges
	}
	if s.CrossMounts == nil {
		s.CrossMounts = def.CrossMounts
	}
	if s.AlwaysRehash == nil {
		s.AlwaysRehash = def.AlwaysRehash
	}
	r := &Rule{Path: s.Path, Depth: Unlimited, Include: s.Include, Exclude: append(append([]string{}, def.Exclude...), s.Exclude...), Source: where, Severity: event.SeverityMedium}
	if s.Depth != nil {
		r.Depth = *s.Depth
	}
	if s.CrossMounts != nil {
		r.CrossMounts = *s.CrossMounts
	}
	if s.AlwaysRehash != nil {
		r.AlwaysRehash = *s.AlwaysRehash
	}
	if s.Severity != "" {
		sev, err := event.ParseSeverity(s.Severity)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %s: field severity: %w", where, s.Path, err)
		}
		r.Severity = sev
	}
	if len(s.Attributes) == 0 {
		r.Attrs = DefaultAttrs
	}
	for _, a := range s.Attributes {
		v, err := ParseAttr(a)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %s: field attributes: %w", where, s.Path, err)
		}
		r.Attrs |= v
	}
	for _, a := range s.ExpectedChanges {
		switch a {
		case "added":
			r.ExpectNew = true
			continue
		case "removed":
			r.ExpectGone = true
			continue
		}
		v, err := ParseAttr(a)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %s: field expected_changes: %w (or added, removed)", where, s.Path, err)
		}
		r.Expected |= v
	}
	r.Attrs &^= r.Expected
	// The type is always recorded: a file turned into a symlink is never expected.
	r.Attrs |= AttrType
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func checkKeys(file string, n *yaml.Node, known map[string]bool, what string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s must be a mapping", file, n.Line, what)
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			errs = append(errs, fmt.Errorf("%s:%d: %s: unknown field %q", file, k.Line, what, k.Value))
		}
	}
	return errors.Join(errs...)
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// ForPaths is the policy of `mamori integrity init PATH…` without a policy
// file: each path watched fully with DefaultAttrs, like a one-line aide.conf.
func ForPaths(paths []string) (*Policy, error) {
	var rules []*Rule
	for _, p := range paths {
		rules = append(rules, &Rule{Path: p, Depth: Unlimited, Attrs: DefaultAttrs, Severity: event.SeverityMedium, Source: "command line"})
	}
	return New("paths", rules, true)
}
