package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestRootHelpListsGroups(t *testing.T) {
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"up", "manager", "agent", "scan", "quarantine", "integrity", "logs", "firewall"} {
		if !strings.Contains(out.String(), g) {
			t.Errorf("mamori --help does not list %q", g)
		}
	}
}
