package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/mamori-sec/mamori/internal/strictjson"
)

// FieldError names the field of a notifier configuration that is wrong, so
// the API can answer with it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// decodeStrict decodes one JSON value into v: keys must match the struct's
// tags exactly (encoding/json alone is case-insensitive and its
// unknown-field error carries no field), types must fit, and nothing may
// follow the value. prefix names the enclosing field in errors.
func decodeStrict(data []byte, v any, prefix string) error {
	if err := strictjson.CheckFields(data, reflect.TypeOf(v)); err != nil {
		var u *strictjson.UnknownFieldError
		if errors.As(err, &u) {
			return &FieldError{Field: prefix + u.Field, Err: errors.New("unknown field")}
		}
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &FieldError{Field: prefix + te.Field, Err: fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)}
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			return err
		}
		return fmt.Errorf("decoding JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("decoding JSON: trailing data after the value")
	}
	return nil
}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"10s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) or(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}
