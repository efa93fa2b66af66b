package alerting

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mamori-sec/mamori/event"
)

// FuzzDecodeRules: any input either fails with an error or yields rules
// that validate, compile without error and survive a JSON round trip.
func FuzzDecodeRules(f *testing.F) {
	for _, tc := range loadDecodeCases(f) {
		f.Add([]byte(tc.Input))
	}
	f.Add([]byte(`[{"id":"r","kinds":["malware.*"],"min_severity":"high"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := DecodeRules(bytes.NewReader(data))
		if err != nil {
			return
		}
		m, err := Compile(specs)
		if err != nil {
			// Duplicate IDs are only found by Compile.
			if !strings.Contains(err.Error(), "duplicate") {
				t.Fatalf("Compile of decoded rules: %v", err)
			}
			return
		}
		m.Match(&event.Event{Kind: "malware.detection", Severity: event.SeverityHigh}, Computer{})
		out, err := json.Marshal(specs)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if _, err := DecodeRules(bytes.NewReader(out)); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
	})
}

// FuzzGlob uses regexp as the oracle for the wildcard matcher.
func FuzzGlob(f *testing.F) {
	f.Add("a*c", "abc")
	f.Add("*.detection", "malware.detection")
	f.Add("a?c", "ac")
	f.Add("**", "")
	f.Fuzz(func(t *testing.T, p, s string) {
		if !utf8.ValidString(p) || !utf8.ValidString(s) {
			return
		}
		var re strings.Builder
		re.WriteString(`(?s)\A`)
		for _, r := range p {
			switch r {
			case '*':
				re.WriteString(".*")
			case '?':
				re.WriteString(".")
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString(`\z`)
		want := regexp.MustCompile(re.String()).MatchString(s)
		if got := compileGlob(p).match(s); got != want {
			t.Errorf("glob(%q).match(%q) = %v, regexp says %v", p, s, got, want)
		}
	})
}

// FuzzContainsFold uses strings.ToLower + Contains as the oracle for ASCII
// needles.
func FuzzContainsFold(f *testing.F) {
	f.Add("cat /etc/Shadow", "/etc/shadow")
	f.Add("ABC", "bc")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, s, needle string) {
		needle = strings.ToLower(needle)
		for i := 0; i < len(needle); i++ {
			if needle[i] >= utf8.RuneSelf {
				return
			}
		}
		want := strings.Contains(strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, s), needle)
		if got := containsFold(s, needle); got != want {
			t.Errorf("containsFold(%q, %q) = %v, want %v", s, needle, got, want)
		}
	})
}
