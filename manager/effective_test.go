package manager

import (
	"encoding/json"
	"testing"

	"github.com/mamori-sec/mamori/api"
)

// The cache key must stay what json.Marshal gave, so computers with equal
// overrides share an entry and different ones never do.
func TestOverridesKey(t *testing.T) {
	on, off := true, false
	for _, tt := range []struct {
		name string
		o    api.PolicyModules
	}{
		{"nil", nil},
		{"empty", api.PolicyModules{}},
		{"one", api.PolicyModules{"integrity": {Enabled: &on}}},
		{"two", api.PolicyModules{"integrity": {Enabled: &off}, "antimalware": {RulePacks: []string{"p"}, Settings: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := json.Marshal(tt.o)
			if got := overridesKey(tt.o); got != string(want) {
				t.Errorf("overridesKey = %q, want %q", got, want)
			}
		})
	}
}
