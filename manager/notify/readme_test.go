package notify

import (
	"os"
	"regexp"
	"testing"
)

// Every JSON example in README.md must decode and build.
func TestREADMEExamplesLoad(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(data, -1)
	if len(blocks) < 4 {
		t.Fatalf("README.md has %d JSON examples, want at least 4", len(blocks))
	}
	for i, b := range blocks {
		c, err := DecodeConfig(b[1])
		if err != nil {
			t.Errorf("README example %d: %v\n%s", i+1, err, b[1])
			continue
		}
		if _, err := New(c, Options{}); err != nil {
			t.Errorf("README example %d: %v", i+1, err)
		}
	}
}
