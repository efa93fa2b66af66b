package firewall

import (
	"testing"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// TestDefaultCompiles keeps the shipped policy valid and free of warnings.
func TestDefaultCompiles(t *testing.T) {
	p, err := policy.DecodeYAML(Default)
	if err != nil {
		t.Fatal(err)
	}
	_, warns, err := policy.Compile(p, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		t.Errorf("default policy warning: %s", w)
	}
}
