// Package alerting decides which manager alert rules an ingested event
// triggers. Rules are JSON (strictly decoded, errors name the rule and the
// field), compiled once into a Matcher whose Match cannot fail. It is a pure
// library: no storage, no I/O; the manager feeds it events and hands the
// hits to manager/notify, whose per-notifier throttle folds alert storms.
package alerting

import (
	"fmt"

	"github.com/mamori-sec/mamori/event"
)

// RuleID names an alert rule, unique within one Matcher (one tenant).
type RuleID string

// Computer is the context an event is matched in: the computer that sent
// it, as the manager's inventory knows it.
type Computer struct {
	ID    string
	Group string
	Tags  []string
}

// RuleSpec is an alert rule as operators write it and the manager stores it.
// Every condition that is set must hold (AND); within a list any entry may
// match (OR), except Tags, which the computer must all carry.
type RuleSpec struct {
	ID      RuleID `json:"id"`
	Name    string `json:"name,omitempty"`
	Enabled *bool  `json:"enabled,omitempty"` // absent = enabled

	Modules     []string    `json:"modules,omitempty"`      // event.Module, exact
	Kinds       []string    `json:"kinds,omitempty"`        // event.Kind, exact or glob ("malware.*")
	MinSeverity MinSeverity `json:"min_severity,omitempty"` // "medium" …; absent = any
	Rules       []string    `json:"rules,omitempty"`        // event.Rule.ID, exact or glob
	Groups      []string    `json:"groups,omitempty"`       // Computer.Group, exact
	Tags        []string    `json:"tags,omitempty"`         // all must be on the computer
	Computers   []string    `json:"computers,omitempty"`    // Computer.ID, exact
	// Contains matches case-insensitively in the message, rule name,
	// file path, process command line, raw text and evidence.
	Contains string `json:"contains,omitempty"`

	// Notifiers names the manager's notifier configurations to send to.
	Notifiers []string `json:"notifiers,omitempty"`
}

// MinSeverity is an event.Severity threshold; its own type so that a bad
// value is reported with the field's name.
type MinSeverity event.Severity

func (s MinSeverity) MarshalText() ([]byte, error) { return event.Severity(s).MarshalText() }

func (s *MinSeverity) UnmarshalText(b []byte) error {
	v, err := event.ParseSeverity(string(b))
	if err != nil {
		return fmt.Errorf("field \"min_severity\": %w", err)
	}
	*s = MinSeverity(v)
	return nil
}
