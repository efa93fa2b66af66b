package policy

import "bytes"

// decodeFlowRule decodes one rules item written on one line as a YAML flow
// mapping — `- {name: web, action: allow, dst_ports: [80, "8000-8080"]}`,
// the form generated and hand-written big policies use — without building
// a yaml.Node tree: yaml.v3 spends ~30 µs and ~6 KB per such line, most of
// a 10,000-rule apply.
//
// It accepts only a narrow subset whose meaning under yaml.v3 is plain, and
// says ok=false for everything else, after which the caller decodes with
// yaml.v3 (which also produces any error message): keys are known Rule
// fields, once each; values are plain scalars of [A-Za-z0-9_./+-] (not
// starting with '-' and not a null word), single- or double-quoted
// strings without escapes, or flow sequences of those; `log` is true or
// false. FuzzSplitMatchesWhole checks it against yaml.v3.
func decodeFlowRule(line []byte, r *Rule) bool {
	s := flowScanner{b: line}
	s.spaces()
	if !s.lit('-') || !s.spaces() || !s.lit('{') {
		return false
	}
	seen := map[string]bool{}
	s.spaces()
	if !s.lit('}') {
		for {
			key := s.key()
			if key == "" || seen[key] || !s.lit(':') || !s.spaces() {
				return false
			}
			seen[key] = true
			if !s.field(key, r) {
				return false
			}
			s.spaces()
			if s.lit('}') {
				break
			}
			if !s.lit(',') {
				return false
			}
			s.spaces()
		}
	}
	// The rest of the line: spaces, then nothing or a comment.
	sp := s.spaces()
	rest := bytes.TrimRight(s.b[s.i:], "\r\n")
	return len(rest) == 0 || (sp && rest[0] == '#' && printableASCII(rest))
}

// printableASCII reports whether b holds only printable ASCII: yaml.v3
// refuses control characters even in comments, and what else a comment
// may hold is its business.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

type flowScanner struct {
	b []byte
	i int
}

// spaces skips blanks and reports whether there were any.
func (s *flowScanner) spaces() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] == ' ' {
		s.i++
	}
	return s.i > start
}

func (s *flowScanner) lit(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *flowScanner) key() string {
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] >= 'a' && s.b[s.i] <= 'z' || s.b[s.i] == '_') {
		s.i++
	}
	return string(s.b[start:s.i])
}

func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '+' || c == '-'
}

// scalar reads one scalar; ok is false outside the subset.
func (s *flowScanner) scalar() (string, bool) {
	if s.i >= len(s.b) {
		return "", false
	}
	if q := s.b[s.i]; q == '"' || q == '\'' {
		end := bytes.IndexByte(s.b[s.i+1:], q)
		if end < 0 {
			return "", false
		}
		v := s.b[s.i+1 : s.i+1+end]
		for _, c := range v {
			if c < 0x20 || c > 0x7e || c == '\\' {
				return "", false // escapes, controls, non-ASCII: leave to yaml.v3
			}
		}
		s.i += end + 2
		if q == '\'' && s.i < len(s.b) && s.b[s.i] == '\'' {
			return "", false // '' is an escaped quote
		}
		return string(v), true
	}
	start := s.i
	for s.i < len(s.b) && plainByte(s.b[s.i]) {
		s.i++
	}
	v := string(s.b[start:s.i])
	switch {
	case v == "", v[0] == '-', v == "null", v == "Null", v == "NULL":
		return "", false
	}
	return v, true
}

func (s *flowScanner) seq() ([]string, bool) {
	if !s.lit('[') {
		return nil, false
	}
	out := []string{} // yaml.v3 makes [] an empty, not a nil, slice
	s.spaces()
	if s.lit(']') {
		return out, true
	}
	for {
		v, ok := s.scalar()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		s.spaces()
		if s.lit(']') {
			return out, true
		}
		if !s.lit(',') {
			return nil, false
		}
		s.spaces()
	}
}

func (s *flowScanner) field(key string, r *Rule) bool {
	var str *string
	var list *[]string
	switch key {
	case "name":
		str = &r.Name
	case "comment":
		str = &r.Comment
	case "interface":
		str = &r.Interface
	case "log_rate":
		str = &r.LogRate
	case "action", "direction", "protocol":
		v, ok := s.scalar()
		if !ok {
			return false
		}
		switch key {
		case "action":
			r.Action = Action(v)
		case "direction":
			r.Direction = Direction(v)
		default:
			r.Protocol = Protocol(v)
		}
		return true
	case "src":
		list = &r.Src
	case "dst":
		list = &r.Dst
	case "state":
		list = &r.State
	case "src_ports", "dst_ports":
		vs, ok := s.seq()
		if !ok {
			return false
		}
		ps := make([]PortRef, len(vs))
		for i, v := range vs {
			ps[i] = PortRef(v)
		}
		if key == "src_ports" {
			r.SrcPorts = ps
		} else {
			r.DstPorts = ps
		}
		return true
	case "log":
		start := s.i
		for s.i < len(s.b) && plainByte(s.b[s.i]) {
			s.i++
		}
		switch string(s.b[start:s.i]) {
		case "true":
			r.Log = true
		case "false":
			r.Log = false
		default:
			return false
		}
		return true
	default:
		return false
	}
	if str != nil {
		v, ok := s.scalar()
		*str = v
		return ok
	}
	vs, ok := s.seq()
	*list = vs
	return ok
}
