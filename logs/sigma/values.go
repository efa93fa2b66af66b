package sigma

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/mamori-sec/mamori/logs/decode"
)

// fieldRef reads one field of a record: well-known fields by index, the
// rest by name.
type fieldRef struct {
	id   decode.Field
	name string
}

func newFieldRef(name string) fieldRef {
	return fieldRef{id: decode.FieldByName(name), name: name}
}

func (f fieldRef) get(r *decode.Record) (string, bool) {
	if f.id != decode.FieldNone {
		return r.Get(f.id)
	}
	return r.Extra(f.name)
}

// strMatcher tests one string value.
type strMatcher interface{ match(s string) bool }

type eqFold string

func (p eqFold) match(s string) bool { return strings.EqualFold(s, string(p)) }

type eqCased string

func (p eqCased) match(s string) bool { return s == string(p) }

// glob is a wildcard pattern split at "*": parts[0] must be a prefix,
// parts[len-1] a suffix, the middle ones appear in order.
type glob struct {
	parts []string
	cased bool
}

func (g glob) match(s string) bool {
	n := len(g.parts)
	first, last := g.parts[0], g.parts[n-1]
	if len(s) < len(first) || !g.eq(s[:len(first)], first) {
		return false
	}
	s = s[len(first):]
	for _, p := range g.parts[1 : n-1] {
		i := g.index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && g.eq(s[len(s)-len(last):], last)
}

func (g glob) eq(a, b string) bool {
	if g.cased {
		return a == b
	}
	return strings.EqualFold(a, b)
}

func (g glob) index(s, sub string) int {
	if g.cased {
		return strings.Index(s, sub)
	}
	return indexFold(s, sub)
}

// indexFold is an allocation-free ASCII case-insensitive strings.Index;
// sub must already be lower case.
func indexFold(s, sub string) int {
	if len(sub) == 0 {
		return 0
	}
	c0 := sub[0]
	c1 := c0
	if c0 >= 'a' && c0 <= 'z' {
		c1 = c0 - 32
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i] != c0 && s[i] != c1 {
			continue
		}
		j := 1
		for ; j < len(sub); j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 32
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
}

type reMatcher struct{ re *regexp.Regexp }

func (m reMatcher) match(s string) bool { return m.re.MatchString(s) }

type cidrMatcher struct{ p netip.Prefix }

func (m cidrMatcher) match(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	return m.p.Contains(a.Unmap())
}

type numMatcher struct {
	op string
	v  float64
}

func (m numMatcher) match(s string) bool {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return false
	}
	switch m.op {
	case "lt":
		return x < m.v
	case "lte":
		return x <= m.v
	case "gt":
		return x > m.v
	case "gte":
		return x >= m.v
	}
	return false
}

// compileString turns a Sigma string value (with * and ? wildcards and \
// escapes) into a matcher. contains/startswith/endswith have already added
// their wildcards.
func compileString(v string, cased bool) (strMatcher, error) {
	hasQ := false
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v) && (v[i+1] == '*' || v[i+1] == '?' || v[i+1] == '\\'):
			cur.WriteByte(v[i+1])
			i++
		case c == '*':
			parts = append(parts, cur.String())
			cur.Reset()
		case c == '?':
			hasQ = true
			cur.WriteByte(c)
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	if hasQ {
		return globRegexp(v, cased)
	}
	if len(parts) == 1 {
		if cased {
			return eqCased(parts[0]), nil
		}
		return eqFold(parts[0]), nil
	}
	if !cased {
		for i := range parts {
			parts[i] = strings.ToLower(parts[i])
		}
	}
	return glob{parts: parts, cased: cased}, nil
}

func globRegexp(v string, cased bool) (strMatcher, error) {
	var b strings.Builder
	if !cased {
		b.WriteString("(?i)")
	}
	b.WriteString("(?s)^")
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v) && (v[i+1] == '*' || v[i+1] == '?' || v[i+1] == '\\'):
			b.WriteString(regexp.QuoteMeta(string(v[i+1])))
			i++
		case c == '*':
			b.WriteString(".*")
		case c == '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("compiling wildcard %q: %w", v, err)
	}
	return reMatcher{re}, nil
}

// escapeWild escapes Sigma wildcards in a transformed (e.g. base64) value.
func escapeWild(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`)
	return r.Replace(s)
}

func encodeUTF16(s string, bigEndian bool) string {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u))
	for _, c := range u {
		if bigEndian {
			b = append(b, byte(c>>8), byte(c))
		} else {
			b = append(b, byte(c), byte(c>>8))
		}
	}
	return string(b)
}

// base64Offsets returns the three encodings of s at byte offsets 0, 1 and
// 2 of a larger base64 text, trimmed to the characters that do not depend
// on the neighbouring bytes (the base64offset modifier, as pySigma does it).
func base64Offsets(s string) []string {
	start := [3]int{0, 2, 3}
	endCut := [3]int{0, 3, 2}
	var out []string
	for i := 0; i < 3; i++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", i) + s))
		e := len(enc) - endCut[(len(s)+i)%3]
		if start[i] <= e {
			out = append(out, enc[start[i]:e])
		}
	}
	return out
}
