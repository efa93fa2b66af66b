package notify

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

type configCase struct {
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
	Field string          `json:"field"`
	Error string          `json:"error"`
}

func loadConfigCases(tb testing.TB) []configCase {
	data, err := os.ReadFile("testdata/configs.json")
	if err != nil {
		tb.Fatal(err)
	}
	var cases []configCase
	if err := json.Unmarshal(data, &cases); err != nil {
		tb.Fatal(err)
	}
	return cases
}

func TestDecodeConfig(t *testing.T) {
	for _, tc := range loadConfigCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := DecodeConfig(tc.Input)
			valid := tc.Field == "" && tc.Error == ""
			if valid {
				if err != nil {
					t.Fatalf("DecodeConfig(%s) = %v, want success", tc.Input, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeConfig(%s) = nil error", tc.Input)
			}
			if tc.Error != "" && !strings.Contains(err.Error(), tc.Error) {
				t.Errorf("DecodeConfig(%s) = %q, want it to contain %q", tc.Input, err, tc.Error)
			}
			if tc.Field != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tc.Field {
					t.Errorf("DecodeConfig(%s) = %v, want field %q", tc.Input, err, tc.Field)
				}
			}
		})
	}
}

// FuzzDecodeConfig: whatever the input, DecodeConfig returns a usable
// config or an error, never a panic; an accepted config builds a notifier
// and survives a JSON round trip.
func FuzzDecodeConfig(f *testing.F) {
	for _, tc := range loadConfigCases(f) {
		f.Add([]byte(tc.Input))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeConfig(data)
		if err != nil {
			return
		}
		if _, err := New(c, Options{}); err != nil {
			t.Fatalf("New of an accepted config: %v", err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeConfig(out); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
	})
}

func TestValidateSettingsRelativeFields(t *testing.T) {
	err := ValidateSettings("smtp", json.RawMessage(`{"address":"h:25","from":"a@b.test","to":["x"]}`))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "to[0]" {
		t.Errorf("ValidateSettings = %v, want field to[0]", err)
	}
	if err := ValidateSettings("webhook", json.RawMessage(`{"url":"https://h.test/x"}`)); err != nil {
		t.Errorf("ValidateSettings(valid webhook) = %v", err)
	}
}
