package alerting

import (
	"errors"
	"fmt"
	"unicode"

	"github.com/mamori-sec/mamori/event"
)

// MaxIDLen bounds rule IDs; they appear in URLs, syslog and mail subjects.
const MaxIDLen = 128

// Validate checks a rule as Compile will use it. The error is a *RuleError
// naming the field.
func (s *RuleSpec) Validate() error {
	fail := func(field string, format string, args ...any) error {
		return &RuleError{Index: -1, ID: s.ID, Field: field, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case s.ID == "":
		return fail("id", "missing")
	case len(s.ID) > MaxIDLen:
		return fail("id", "longer than %d bytes", MaxIDLen)
	case !printable(string(s.ID)):
		return fail("id", "contains control or space characters")
	}
	if s.MinSeverity < MinSeverity(event.SeverityUnknown) || s.MinSeverity > MinSeverity(event.SeverityCritical) {
		return fail("min_severity", "out of range")
	}
	lists := []struct {
		name string
		v    []string
	}{
		{"modules", s.Modules}, {"kinds", s.Kinds}, {"rules", s.Rules}, {"groups", s.Groups},
		{"tags", s.Tags}, {"computers", s.Computers}, {"notifiers", s.Notifiers},
	}
	for _, l := range lists {
		for i, v := range l.v {
			if v == "" {
				return fail(fmt.Sprintf("%s[%d]", l.name, i), "empty")
			}
		}
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// ErrDuplicateID is wrapped when two rules of one set share an ID.
var ErrDuplicateID = errors.New("duplicate rule id")
