package alerting

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// Every JSON example in README.md must decode and compile.
func TestREADMEExamplesLoad(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(data, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no JSON example")
	}
	for i, b := range blocks {
		specs, err := DecodeRules(bytes.NewReader(b[1]))
		if err != nil {
			t.Errorf("README example %d: %v", i+1, err)
			continue
		}
		if _, err := Compile(specs); err != nil {
			t.Errorf("README example %d: %v", i+1, err)
		}
	}
}
