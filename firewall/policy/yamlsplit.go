package policy

import (
	"bytes"
	"runtime"
	"sync"

	"go.yaml.in/yaml/v3"
)

// splitMinRules is the rule count from which DecodeYAML decodes the rules
// list in parallel pieces; below it the goroutines cost more than they
// save. A variable so that tests can exercise the split on small inputs.
var splitMinRules = 256

// decodeYAMLSplit decodes a big policy by cutting its top-level block
// sequence "rules:" at item boundaries and decoding the pieces
// concurrently with the same strict decoder; the rest of the document is
// decoded on its own. yaml.v3 is the whole cost of loading a 10,000-rule
// policy, and it is single-threaded.
//
// The cut is only made where it cannot change the meaning: an item starts
// with "- " at the sequence's indentation at the start of a line, which in
// block context is exactly a new item; inside a quoted or flow scalar such
// a cut leaves an unterminated piece, which fails to decode. Documents
// that use anchors, aliases, tags, directives or several documents are not
// split at all. ok is false whenever the split is not used or any piece
// fails, and the caller then decodes the whole document the ordinary way
// (which also produces the error message with its line).
func decodeYAMLSplit(b []byte) (p *Policy, ok bool) {
	if bytes.ContainsAny(b, "&*!\t") || bytes.Count(b, []byte("\r")) != bytes.Count(b, []byte("\r\n")) {
		return nil, false // a lone CR is a line break to YAML, not to the cut
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	rulesAt := -1
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte("---")) || bytes.HasPrefix(l, []byte("...")) || bytes.HasPrefix(l, []byte("%")) {
			return nil, false
		}
		if isRulesKey(l) {
			if rulesAt >= 0 {
				return nil, false // a duplicate key: let the decoder say so
			}
			rulesAt = i
		}
	}
	if rulesAt < 0 {
		return nil, false
	}
	// The items: from the first content line after "rules:" to the first
	// line indented less than them, or as much but not an item.
	ind := -1
	var starts []int // line index of each item
	end := len(lines)
scan:
	for i := rulesAt + 1; i < len(lines); i++ {
		l := lines[i]
		n := indent(l)
		rest := bytes.TrimRight(l[n:], "\r\n ")
		if len(rest) == 0 || rest[0] == '#' {
			continue
		}
		isItem := rest[0] == '-' && (len(rest) == 1 || rest[1] == ' ')
		switch {
		case ind < 0 && !isItem:
			return nil, false // not a block sequence
		case ind < 0:
			ind = n
			starts = append(starts, i)
		case n > ind:
		case n == ind && isItem:
			starts = append(starts, i)
		default:
			end = i
			break scan
		}
	}
	if len(starts) < splitMinRules {
		return nil, false
	}
	// The lines are consecutive slices of b: a run of them is b[at(i):at(j)].
	offs := make([]int, len(lines)+1)
	for i, l := range lines {
		offs[i+1] = offs[i] + len(l)
	}
	head := append(b[:offs[starts[0]]:offs[starts[0]]], b[offs[end]:]...)
	pieces := min(runtime.GOMAXPROCS(0)*2, len(starts))
	parts := make([][]Rule, pieces)
	errs := make([]error, pieces+1)
	var wg sync.WaitGroup
	for k := range pieces {
		lo, hi := k*len(starts)/pieces, (k+1)*len(starts)/pieces
		from, to := starts[lo], end
		if hi < len(starts) {
			to = starts[hi]
		}
		wg.Go(func() {
			if rs, ok := decodeFlowItems(lines, starts[lo:hi], to); ok {
				parts[k] = rs
				return
			}
			errs[k] = decodeStrict(b[offs[from]:offs[to]], &parts[k])
		})
	}
	var pol Policy
	errs[pieces] = decodeStrict(head, &pol)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, false
		}
	}
	if pol.Rules != nil {
		return nil, false
	}
	n := 0
	for _, r := range parts {
		n += len(r)
	}
	if n != len(starts) {
		return nil, false
	}
	pol.Rules = make([]Rule, 0, n)
	for _, r := range parts {
		pol.Rules = append(pol.Rules, r...)
	}
	return &pol, true
}

// decodeStrict decodes exactly one YAML document into v, unknown fields
// being errors.
func decodeStrict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// isRulesKey reports whether l is the top-level key "rules:" with its
// value on the following lines.
func isRulesKey(l []byte) bool {
	rest, ok := bytes.CutPrefix(l, []byte("rules:"))
	if !ok {
		return false
	}
	trimmed := bytes.TrimLeft(rest, " ")
	return len(trimmed) == 0 || trimmed[0] == '\n' || trimmed[0] == '\r' || (trimmed[0] == '#' && len(trimmed) < len(rest))
}

func indent(l []byte) int {
	n := 0
	for n < len(l) && l[n] == ' ' {
		n++
	}
	return n
}

// decodeFlowItems decodes items that are each one flow-mapping line
// (decodeFlowRule), followed at most by blank and comment lines; items
// start at the given line indexes, the last one ends before line end.
func decodeFlowItems(lines [][]byte, items []int, end int) ([]Rule, bool) {
	rs := make([]Rule, len(items))
	for j, at := range items {
		next := end
		if j+1 < len(items) {
			next = items[j+1]
		}
		if !decodeFlowRule(lines[at], &rs[j]) {
			return nil, false
		}
		for _, l := range lines[at+1 : next] {
			rest := bytes.TrimRight(l[indent(l):], "\r\n")
			if len(rest) > 0 && (rest[0] != '#' || !printableASCII(rest)) {
				return nil, false // the item goes on, or odd bytes: leave it to yaml.v3
			}
		}
	}
	return rs, true
}
