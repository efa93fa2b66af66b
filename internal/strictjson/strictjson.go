// Package strictjson refuses JSON object keys that a struct does not declare
// with exactly that spelling. encoding/json matches keys case-insensitively
// ("Kinds" fills "kinds") and its unknown-field error carries no field path
// and cannot be told from other errors without reading its text, so config
// decoders run this check first and name the offending field.
package strictjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// UnknownFieldError names, as a dotted path, a key no struct field declares.
type UnknownFieldError struct {
	Field string
}

func (e *UnknownFieldError) Error() string { return fmt.Sprintf("unknown field %q", e.Field) }

// CheckFields walks raw against t (a struct or pointer to one) and returns an
// *UnknownFieldError for the first unknown key in sorted order, depth first.
// Values that are not objects, and types with their own UnmarshalText, are
// left to the typed decode, which reports them.
func CheckFields(raw []byte, t reflect.Type) error { return check(raw, t, "") }

func check(raw []byte, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if _, ok := reflect.New(t).Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	known := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			known[name] = f.Type
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ft, ok := known[k]
		if !ok {
			return &UnknownFieldError{Field: prefix + k}
		}
		if err := check(obj[k], ft, prefix+k+"."); err != nil {
			return err
		}
	}
	return nil
}
