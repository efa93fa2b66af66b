package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Port int `json:"port"`
}

// level is a TextUnmarshaler: its values are checked by its own code.
type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low", "high":
		return nil
	}
	return fmt.Errorf("unknown level %q", b)
}

type Base struct {
	ID string `json:"id"`
}

type hidden struct {
	Note string `json:"note"`
}

type outer struct {
	Base                      // promoted: "id"
	hidden                    // unexported embedded struct: "note" is still promoted
	Name   string             `json:"name"`
	Inner  inner              `json:"inner"`
	Ptr    *inner             `json:"ptr,omitempty"`
	Skip   string             `json:"-"`
	Dash   string             `json:"-,"` // named "-"
	Plain  bool               // no tag: the Go name
	List   []inner            `json:"list"`
	Ptrs   []*inner           `json:"ptrs"`
	Arr    [2]inner           `json:"arr"`
	Map    map[string]inner   `json:"map"`
	Nested map[string][]inner `json:"nested"`
	Level  level              `json:"level"`
	Levels []level            `json:"levels"`
	When   time.Time          `json:"when"`
	Raw    json.RawMessage    `json:"raw"`
	Any    any                `json:"any"`
	Bytes  []byte             `json:"bytes"`
	Small  int8               `json:"small"`
	Count  uint               `json:"count"`
	Ratio  float32            `json:"ratio"`
	Quoted int                `json:"quoted,string"`
	secret string
}

// The table lives in testdata/cases.txt, one case a line:
//
//	<check|fields> <TAB> <JSON> <TAB> <want>
//
// where want is "ok", "unknown <path>", "type <path> <json kind>" or
// "value <path>".
func TestCheck(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			t.Fatalf("cases.txt:%d: want 3 tab-separated columns", n+1)
		}
		mode, in, want := parts[0], parts[1], parts[2]
		check := Check
		if mode == "fields" {
			check = CheckFields
		}
		got := describe(check([]byte(in), reflect.TypeOf(&outer{})))
		if got != want {
			t.Errorf("cases.txt:%d: %s(%s) = %s, want %s", n+1, mode, in, got, want)
		}
	}
}

func describe(err error) string {
	var u *UnknownFieldError
	var te *TypeError
	var ve *ValueError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &u):
		return "unknown " + u.Field
	case errors.As(err, &te):
		return "type " + te.Field + " " + te.Value
	case errors.As(err, &ve):
		return "value " + ve.Field
	}
	return "other " + err.Error()
}

// What Check accepts, encoding/json decodes without an error: the two
// agree on every field name and type.
func TestCheckAgreesWithDecode(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.Split(line, "\t")
		if len(parts) != 3 || parts[0] != "check" || parts[2] != "ok" || !json.Valid([]byte(parts[1])) {
			continue
		}
		if err := strictDecode(parts[1]); err != nil {
			t.Errorf("Check accepted %s, encoding/json refuses it: %v", parts[1], err)
		}
	}
}

func strictDecode(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var v outer
	return dec.Decode(&v)
}

// FuzzCheck: never panics; whatever Check accepts, the typed decode accepts
// too (so nobody needs to read encoding/json's error text), CheckFields
// reports unknown fields only, and CheckFieldsParsed agrees with it.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","inner":{"port":1}}`, `{"ptr":{"port":1,"x":2}}`, `{"list":[{"port":1}]}`,
		`{"map":{"a":{"port":"x"}}}`, `{"levels":["low","mid"]}`, `{"id":"x","note":"n","Plain":true}`,
		`{"small":300}`, `{"when":"2026-01-01T00:00:00Z"}`, `{"quoted":"5"}`, `{"bytes":"AAAA"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ := reflect.TypeOf(&outer{})
		if Check([]byte(s), typ) == nil && json.Valid([]byte(s)) {
			var top any
			_ = json.Unmarshal([]byte(s), &top)
			if _, isObj := top.(map[string]any); isObj {
				if err := strictDecode(s); err != nil && !strings.Contains(err.Error(), "invalid use of ,string") {
					t.Errorf("Check accepted %s, encoding/json refuses it: %v", s, err)
				}
			}
		}
		var u *UnknownFieldError
		err := CheckFields([]byte(s), typ)
		if err != nil && !errors.As(err, &u) {
			t.Errorf("CheckFields(%s) = %v, want only unknown-field errors", s, err)
		}
		// Without the validity pass: the same answer on valid JSON, and
		// no panic on anything else.
		perr := CheckFieldsParsed([]byte(s), typ)
		if json.Valid([]byte(s)) && fmt.Sprint(perr) != fmt.Sprint(err) {
			t.Errorf("CheckFieldsParsed(%s) = %v, CheckFields = %v", s, perr, err)
		}
	})
}

// BenchmarkCheck walks 500 objects of the test type: the walk's own cost
// (json.Valid included), which decoders pay on top of encoding/json.
func BenchmarkCheck(b *testing.B) {
	one := `{"name":"web","inner":{"port":443},"list":[{"port":1},{"port":2}],"map":{"a":{"port":3}},"level":"high","when":"2026-11-25T03:00:00Z","small":7,"ratio":0.5,"bytes":"AAAA"}`
	body := []byte(`[` + strings.Repeat(one+",", 499) + one + `]`)
	typ := reflect.TypeOf([]outer{})
	for _, c := range []struct {
		name string
		fn   func([]byte, reflect.Type) error
	}{{"Check", Check}, {"CheckFields", CheckFields}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := c.fn(body, typ); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
