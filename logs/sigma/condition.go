package sigma

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/mamori-sec/mamori/logs/decode"
)

// ParseCondition compiles a Sigma condition over the named searches:
// and/or/not, parentheses, "1 of sel_*", "all of them", "any of x*".
// Aggregations ("| count() by …") are rejected: they were replaced by
// correlation rules.
func ParseCondition(cond string, searches map[string]node) (node, error) {
	toks, err := tokenize(cond)
	if err != nil {
		return nil, err
	}
	p := &condParser{toks: toks, searches: searches}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		if p.toks[p.pos] == "|" {
			return nil, fmt.Errorf("aggregation expressions (| count() …) are not supported: use a correlation rule")
		}
		return nil, fmt.Errorf("unexpected %q at token %d", p.toks[p.pos], p.pos+1)
	}
	return n, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '|':
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()|", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty condition")
	}
	return toks, nil
}

type condParser struct {
	toks     []string
	pos      int
	searches map[string]node
	depth    int
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	ns := orNode{l}
	for strings.EqualFold(p.peek(), "or") {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		ns = append(ns, r)
	}
	if len(ns) == 1 {
		return l, nil
	}
	return ns, nil
}

func (p *condParser) and() (node, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	ns := andNode{l}
	for strings.EqualFold(p.peek(), "and") {
		p.pos++
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		ns = append(ns, r)
	}
	if len(ns) == 1 {
		return l, nil
	}
	return ns, nil
}

func (p *condParser) not() (node, error) {
	if strings.EqualFold(p.peek(), "not") {
		p.pos++
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > 200 {
			return nil, fmt.Errorf("condition nested too deeply")
		}
		n, err := p.not()
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	}
	return p.primary()
}

func (p *condParser) primary() (node, error) {
	t := p.peek()
	switch {
	case t == "":
		return nil, fmt.Errorf("condition ends early")
	case t == "(":
		p.pos++
		p.depth++
		if p.depth > 200 {
			return nil, fmt.Errorf("condition nested too deeply")
		}
		n, err := p.or()
		p.depth--
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return n, nil
	case t == ")" || t == "|" || strings.EqualFold(t, "and") || strings.EqualFold(t, "or"):
		return nil, fmt.Errorf("unexpected %q", t)
	}
	if p.pos+1 < len(p.toks) && strings.EqualFold(p.toks[p.pos+1], "of") {
		return p.quantifier()
	}
	p.pos++
	n, ok := p.searches[t]
	if !ok {
		return nil, fmt.Errorf("unknown search identifier %q", t)
	}
	return n, nil
}

// quantifier handles "1 of x*", "any of them", "all of sel*", "N of …".
func (p *condParser) quantifier() (node, error) {
	q := strings.ToLower(p.toks[p.pos])
	p.pos += 2
	target := p.peek()
	if target == "" || target == "(" || target == ")" {
		return nil, fmt.Errorf("missing target after %q of", q)
	}
	p.pos++
	var names []string
	for name := range p.searches {
		if target == "them" {
			if !strings.HasPrefix(name, "_") {
				names = append(names, name)
			}
			continue
		}
		if ok, _ := path.Match(target, name); ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%q matches no search identifier", target)
	}
	sort.Strings(names)
	ns := make([]node, len(names))
	for i, n := range names {
		ns[i] = p.searches[n]
	}
	switch q {
	case "all":
		return andNode(ns), nil
	case "1", "any":
		return orNode(ns), nil
	}
	var k int
	if _, err := fmt.Sscanf(q, "%d", &k); err != nil || k < 1 {
		return nil, fmt.Errorf("bad quantifier %q", q)
	}
	return &atLeast{k: k, ns: ns}, nil
}

type atLeast struct {
	k  int
	ns []node
}

func (n *atLeast) eval(r *decode.Record) bool {
	c := 0
	for _, x := range n.ns {
		if x.eval(r) {
			c++
			if c >= n.k {
				return true
			}
		}
	}
	return false
}
