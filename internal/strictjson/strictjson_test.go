package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

type inner struct {
	Port int `json:"port"`
}

type outer struct {
	Name  string  `json:"name"`
	Inner inner   `json:"inner"`
	Ptr   *inner  `json:"ptr,omitempty"`
	Skip  string  `json:"-"`
	List  []inner `json:"list"`
}

func TestCheckFields(t *testing.T) {
	tests := []struct {
		in, want string // want: unknown field path, "" for none
	}{
		{`{"name":"a","inner":{"port":1}}`, ""},
		{`{"Name":"a"}`, "Name"},
		{`{"inner":{"Port":1}}`, "inner.Port"},
		{`{"ptr":{"port":1,"x":2}}`, "ptr.x"},
		{`{"Skip":"x"}`, "Skip"},
		{`{"name":1}`, ""}, // type errors are the typed decode's
		{`[1,2]`, ""},
		{`{"b":1,"a":2}`, "a"}, // sorted order: the report is stable
	}
	for _, tc := range tests {
		err := CheckFields([]byte(tc.in), reflect.TypeOf(outer{}))
		var u *UnknownFieldError
		got := ""
		if errors.As(err, &u) {
			got = u.Field
		}
		if got != tc.want {
			t.Errorf("CheckFields(%s) = %v, want unknown field %q", tc.in, err, tc.want)
		}
	}
}

// FuzzCheckFields: never panics, and whatever it accepts has no key that
// the exact-tag decode would refuse.
func FuzzCheckFields(f *testing.F) {
	f.Add(`{"name":"a","inner":{"port":1}}`)
	f.Add(`{"ptr":{"port":1,"x":2}}`)
	f.Add(`{"list":[{"port":1}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		if CheckFields([]byte(s), reflect.TypeOf(&outer{})) != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &m) != nil {
			return
		}
		for k := range m {
			switch k {
			case "name", "inner", "ptr", "list":
			default:
				t.Errorf("CheckFields accepted unknown key %q in %s", k, s)
			}
		}
	})
}
