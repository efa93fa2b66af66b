package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/mamori-sec/mamori/internal/strictjson"
)

// MaxRulesBytes bounds a rule document so a hostile API body cannot
// exhaust memory.
const MaxRulesBytes = 4 << 20

// RuleError names the rule (by position and ID when known) and the field a
// problem is in, so the API can answer with the field and the console can
// point at it.
type RuleError struct {
	Index int    // position in the document, -1 when not from one
	ID    RuleID // empty when the rule has none (yet)
	Field string // JSON path inside the rule, empty when about the whole rule
	Err   error
}

func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString("alert rule")
	if e.Index >= 0 {
		fmt.Fprintf(&b, " %d", e.Index)
	}
	if e.ID != "" {
		fmt.Fprintf(&b, " %q", string(e.ID))
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %q", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *RuleError) Unwrap() error { return e.Err }

// DecodeRules reads a JSON array of rules strictly: unknown or
// differently-cased fields, wrong types and trailing data are errors. It
// stops at the first bad rule; use Compile's skip-and-report behaviour to
// load the good rules of a stored set.
func DecodeRules(r io.Reader) ([]RuleSpec, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRulesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading alert rules: %w", err)
	}
	if len(data) > MaxRulesBytes {
		return nil, fmt.Errorf("reading alert rules: document larger than %d bytes", MaxRulesBytes)
	}
	var raws []json.RawMessage
	if err := decodeStrict(data, &raws); err != nil {
		return nil, fmt.Errorf("decoding alert rules: want a JSON array of rules: %w", err)
	}
	specs := make([]RuleSpec, 0, len(raws))
	for i, raw := range raws {
		s, err := decodeRule(raw, i)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// DecodeRule reads one rule strictly and validates it, as the API does for
// a create or update body.
func DecodeRule(data []byte) (RuleSpec, error) {
	if len(data) > MaxRulesBytes {
		return RuleSpec{}, &RuleError{Index: -1, Err: fmt.Errorf("larger than %d bytes", MaxRulesBytes)}
	}
	return decodeRule(data, -1)
}

func decodeRule(raw []byte, index int) (RuleSpec, error) {
	var s RuleSpec
	if err := strictjson.CheckFields(raw, reflect.TypeOf(s)); err != nil {
		var u *strictjson.UnknownFieldError
		if errors.As(err, &u) {
			err = &RuleError{Field: u.Field, Err: errors.New("unknown field")}
		}
		return s, withPos(err, index, peekID(raw))
	}
	if err := decodeStrict(raw, &s); err != nil {
		re := &RuleError{Index: index, ID: peekID(raw), Err: err}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			re.Field = te.Field
			re.Err = fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)
		}
		return s, re
	}
	if err := s.Validate(); err != nil {
		return s, withPos(err, index, s.ID)
	}
	return s, nil
}

func withPos(err error, index int, id RuleID) error {
	var re *RuleError
	if errors.As(err, &re) {
		re.Index = index
		if re.ID == "" {
			re.ID = id
		}
		return re
	}
	return &RuleError{Index: index, ID: id, Err: err}
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// peekID recovers a rule's ID for error messages even when the rest of the
// rule does not decode.
func peekID(raw []byte) RuleID {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	s, _ := v.ID.(string)
	return RuleID(s)
}
