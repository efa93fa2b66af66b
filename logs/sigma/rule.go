// Package sigma loads Sigma detection rules and Sigma correlation rules
// from YAML, compiles them once at load time (selections, modifiers,
// conditions, logsource mapping onto mamori's decoded records) and matches
// them against decode.Records. A rule that fails to load is reported with
// its file, rule ID and reason, and the others still load unless the
// loader is strict.
package sigma

import (
	"fmt"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/logs/decode"
)

// Rule is one compiled Sigma rule: a detection rule or a correlation rule.
type Rule struct {
	ID          string
	Name        string
	Title       string
	Description string
	Author      string
	Status      string
	Level       event.Severity
	Tags        []string
	References  []string
	Logsource   Logsource
	// Source is the file (or pack path) the rule came from, Line its line.
	Source string
	Line   int
	// Generate is false for base rules referenced by a correlation (they
	// feed it but raise no alert of their own), unless the rule or the
	// correlation asks for generate: true.
	Generate         bool
	explicitGenerate bool
	// Response is mamori's extension: what to do when the rule fires.
	Response *Response

	Correlation *Correlation

	cond node
	// active is false when no mamori source produces this logsource.
	active bool
}

// Active reports whether some mamori source can produce events for the
// rule's logsource; inactive rules load but never match.
func (r *Rule) Active() bool { return r.active || r.Correlation != nil }

// Response is the active response a rule may carry, written in the rule as
//
//	mamori:
//	  response: {block: 15m}
type Response struct {
	Block time.Duration
}

// Logsource is the rule's logsource section.
type Logsource struct {
	Product    string
	Service    string
	Category   string
	Definition string
}

// Match tells whether the record satisfies the rule's detection (and its
// logsource, which the caller's index normally checks already).
func (r *Rule) Match(rec *decode.Record) bool {
	if r.cond == nil {
		return false
	}
	return r.cond.eval(rec)
}

// Ref returns the rule reference carried by alerts.
func (r *Rule) Ref() string {
	if r.ID != "" {
		return r.ID
	}
	return r.Name
}

// LoadError is one rule that did not load.
type LoadError struct {
	File   string
	Line   int
	RuleID string
	Title  string
	Reason string
}

func (e *LoadError) Error() string {
	id := e.RuleID
	if id == "" {
		id = e.Title
	}
	return fmt.Sprintf("%s:%d: rule %s: %s", e.File, e.Line, id, e.Reason)
}
