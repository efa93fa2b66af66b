package sigma

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/mamori-sec/mamori/logs/decode"
	"gopkg.in/yaml.v3"
)

// node is a compiled piece of a detection: evaluation cannot fail.
type node interface{ eval(r *decode.Record) bool }

type andNode []node

func (n andNode) eval(r *decode.Record) bool {
	for _, c := range n {
		if !c.eval(r) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) eval(r *decode.Record) bool {
	for _, c := range n {
		if c.eval(r) {
			return true
		}
	}
	return false
}

type notNode struct{ n node }

func (n notNode) eval(r *decode.Record) bool { return !n.n.eval(r) }

type constNode bool

func (n constNode) eval(*decode.Record) bool { return bool(n) }

// itemNode is "field|modifiers: values".
type itemNode struct {
	f         fieldRef
	ms        []strMatcher
	all       bool
	matchNull bool  // a null among the values: absent or empty field matches
	exists    *bool // the exists modifier
	refs      []fieldRef
	cased     bool
}

func (n *itemNode) eval(r *decode.Record) bool {
	v, ok := n.f.get(r)
	if n.exists != nil {
		return ok == *n.exists
	}
	if !ok || v == "" {
		if n.matchNull {
			return true
		}
		if !ok {
			return false
		}
	}
	if n.refs != nil {
		for _, ref := range n.refs {
			o, ok2 := ref.get(r)
			eq := ok2 && (o == v || !n.cased && strings.EqualFold(o, v))
			if eq && !n.all {
				return true
			}
			if !eq && n.all {
				return false
			}
		}
		return n.all
	}
	if n.all {
		for _, m := range n.ms {
			if !m.match(v) {
				return false
			}
		}
		return len(n.ms) > 0
	}
	for _, m := range n.ms {
		if m.match(v) {
			return true
		}
	}
	return false
}

// keywordNode searches the whole raw line.
type keywordNode struct {
	ms  []strMatcher
	all bool
}

func (n *keywordNode) eval(r *decode.Record) bool {
	if n.all {
		for _, m := range n.ms {
			if !m.match(r.Raw) {
				return false
			}
		}
		return true
	}
	for _, m := range n.ms {
		if m.match(r.Raw) {
			return true
		}
	}
	return false
}

// compileSearch compiles one search identifier's value.
func compileSearch(v *yaml.Node) (node, error) {
	switch v.Kind {
	case yaml.MappingNode:
		return compileMap(v)
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			return constNode(false), nil
		}
		if v.Content[0].Kind == yaml.MappingNode {
			var or orNode
			for _, c := range v.Content {
				if c.Kind != yaml.MappingNode {
					return nil, fmt.Errorf("line %d: list mixes maps and values", c.Line)
				}
				m, err := compileMap(c)
				if err != nil {
					return nil, err
				}
				or = append(or, m)
			}
			return or, nil
		}
		return compileKeywords(v.Content, nil)
	case yaml.ScalarNode:
		return compileKeywords([]*yaml.Node{v}, nil)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node in detection", v.Line)
}

func compileKeywords(vals []*yaml.Node, mods []string) (node, error) {
	kn := &keywordNode{}
	for _, m := range mods {
		switch m {
		case "all":
			kn.all = true
		case "contains", "cased":
		default:
			return nil, fmt.Errorf("keyword modifier %q is not supported", m)
		}
	}
	for _, v := range vals {
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: keyword must be a value", v.Line)
		}
		s := v.Value
		if !strings.HasPrefix(s, "*") {
			s = "*" + s
		}
		if !strings.HasSuffix(s, "*") || strings.HasSuffix(s, `\*`) {
			s += "*"
		}
		m, err := compileString(s, false)
		if err != nil {
			return nil, err
		}
		kn.ms = append(kn.ms, m)
	}
	return kn, nil
}

func compileMap(m *yaml.Node) (node, error) {
	var and andNode
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		parts := strings.Split(k.Value, "|")
		field, mods := parts[0], parts[1:]
		var vals []*yaml.Node
		if v.Kind == yaml.SequenceNode {
			vals = v.Content
		} else {
			vals = []*yaml.Node{v}
		}
		if field == "" {
			n, err := compileKeywords(vals, mods)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", k.Line, err)
			}
			and = append(and, n)
			continue
		}
		n, err := compileItem(field, mods, vals)
		if err != nil {
			return nil, fmt.Errorf("line %d: field %s: %w", k.Line, k.Value, err)
		}
		and = append(and, n)
	}
	if len(and) == 1 {
		return and[0], nil
	}
	return and, nil
}

// compileItem applies Sigma's modifier pipeline: value transformations
// (base64, base64offset, utf16*, wide, windash), then the match type
// (contains, startswith, endswith, re, cidr, numeric, exists, fieldref),
// then all.
func compileItem(field string, mods []string, vals []*yaml.Node) (node, error) {
	n := &itemNode{f: newFieldRef(field)}
	matchType := ""
	var transforms []string
	reFlags := ""
	for _, m := range mods {
		switch m {
		case "contains", "startswith", "endswith", "re", "cidr", "lt", "lte", "gt", "gte", "exists", "fieldref":
			if matchType != "" && !(matchType == "re" && m == "re") {
				return nil, fmt.Errorf("modifiers %s and %s cannot be combined", matchType, m)
			}
			matchType = m
		case "all":
			n.all = true
		case "cased":
			n.cased = true
		case "base64", "base64offset", "utf16le", "utf16be", "utf16", "wide", "windash":
			transforms = append(transforms, m)
		case "i", "m", "s":
			if matchType != "re" {
				return nil, fmt.Errorf("modifier %s only follows re", m)
			}
			reFlags += m
		default:
			return nil, fmt.Errorf("unknown modifier %q", m)
		}
	}
	for _, v := range vals {
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: value must be a scalar", v.Line)
		}
		if v.Tag == "!!null" {
			n.matchNull = true
			continue
		}
		switch matchType {
		case "exists":
			b, err := strconv.ParseBool(v.Value)
			if err != nil {
				return nil, fmt.Errorf("exists needs true or false, got %q", v.Value)
			}
			n.exists = &b
			continue
		case "fieldref":
			n.refs = append(n.refs, newFieldRef(v.Value))
			continue
		case "re":
			re, err := regexp.Compile(reFlagsPrefix(reFlags) + v.Value)
			if err != nil {
				return nil, fmt.Errorf("compiling re %q: %w", v.Value, err)
			}
			n.ms = append(n.ms, reMatcher{re})
			continue
		case "cidr":
			p, err := netip.ParsePrefix(v.Value)
			if err != nil {
				return nil, fmt.Errorf("parsing cidr: %w", err)
			}
			n.ms = append(n.ms, cidrMatcher{p.Masked()})
			continue
		case "lt", "lte", "gt", "gte":
			x, err := strconv.ParseFloat(v.Value, 64)
			if err != nil {
				return nil, fmt.Errorf("%s needs a number, got %q", matchType, v.Value)
			}
			n.ms = append(n.ms, numMatcher{matchType, x})
			continue
		}
		variants := []string{v.Value}
		transformed := false
		for _, t := range transforms {
			var next []string
			for _, s := range variants {
				switch t {
				case "windash":
					next = append(next, windash(s)...)
				case "utf16le", "wide":
					next = append(next, encodeUTF16(s, false))
				case "utf16be":
					next = append(next, encodeUTF16(s, true))
				case "utf16":
					next = append(next, "\xff\xfe"+encodeUTF16(s, false))
				case "base64":
					next = append(next, escapeWild(base64.StdEncoding.EncodeToString([]byte(s))))
					transformed = true
				case "base64offset":
					for _, e := range base64Offsets(s) {
						next = append(next, escapeWild(e))
					}
					transformed = true
				}
			}
			variants = next
		}
		if transformed && matchType == "" && hasTransform(transforms, "base64offset") {
			matchType = "contains"
		}
		for _, s := range variants {
			switch matchType {
			case "contains":
				s = "*" + s + "*"
			case "startswith":
				s = s + "*"
			case "endswith":
				s = "*" + s
			}
			sm, err := compileString(s, n.cased)
			if err != nil {
				return nil, err
			}
			n.ms = append(n.ms, sm)
		}
	}
	if n.exists == nil && n.refs == nil && len(n.ms) == 0 && !n.matchNull {
		return nil, fmt.Errorf("no values")
	}
	return n, nil
}

func hasTransform(ts []string, t string) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func reFlagsPrefix(f string) string {
	if f == "" {
		return ""
	}
	return "(?" + f + ")"
}

// windash expands "-x" into the dash variants Windows tools accept.
func windash(s string) []string {
	out := []string{s}
	for _, d := range []string{"/", "–", "—", "―"} {
		if strings.Contains(s, "-") {
			out = append(out, strings.ReplaceAll(s, "-", d))
		}
	}
	return out
}
