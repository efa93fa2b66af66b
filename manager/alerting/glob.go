package alerting

import "strings"

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
// O(len(p)·len(s)), never exponential.
func wildcard(p, s string) bool {
	pr, sr := []rune(p), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && (pr[pi] == '?' || pr[pi] == sr[si]):
			pi++
			si++
		case pi < len(pr) && pr[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '*' {
		pi++
	}
	return pi == len(pr)
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
