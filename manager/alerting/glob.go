package alerting

import (
	"strings"
	"unicode/utf8"
)

// glob is a compiled pattern where '*' matches any run of characters
// (including none and including '/' and '.') and '?' one character. Rule
// IDs and kinds are not paths, so path.Match's '/' rule and its character
// classes, which can fail at match time, would only surprise.
type glob struct {
	pattern string
	literal bool
}

func compileGlob(p string) glob {
	return glob{pattern: p, literal: !strings.ContainsAny(p, "*?")}
}

func (g glob) match(s string) bool {
	if g.literal {
		return g.pattern == s
	}
	return wildcard(g.pattern, s)
}

// wildcard is the linear-backtracking matcher: on a mismatch after a '*',
// retry with the star swallowing one more character. Worst case
// O(len(p)·len(s)), never exponential. It walks bytes (literal UTF-8
// sequences match byte for byte) and steps whole runes only for '?' and
// for the star, so it allocates nothing.
func wildcard(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; {
			case c == '*':
				star, mark = pi, si
				pi++
				continue
			case c == '?':
				_, w := utf8.DecodeRuneInString(s[si:])
				pi++
				si += w
				continue
			case c == s[si]:
				pi++
				si++
				continue
			}
		}
		if star < 0 {
			return false
		}
		pi = star + 1
		_, w := utf8.DecodeRuneInString(s[mark:])
		mark += w
		si = mark
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

type globs []glob

func compileGlobs(ps []string) globs {
	if len(ps) == 0 {
		return nil
	}
	gs := make(globs, len(ps))
	for i, p := range ps {
		gs[i] = compileGlob(p)
	}
	return gs
}

func (gs globs) any(s string) bool {
	for _, g := range gs {
		if g.match(s) {
			return true
		}
	}
	return false
}
