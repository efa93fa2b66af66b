package policy

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExamplesLoad keeps the documented examples valid.
func TestReadmeExamplesLoad(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no yaml example in ../README.md")
	}
	for i, blk := range blocks {
		y, _, _ := strings.Cut(blk, "```")
		p, err := DecodeYAML([]byte(y))
		if err != nil {
			t.Fatalf("README example %d: %v", i+1, err)
		}
		if _, _, err := Compile(p, Options{}); err != nil {
			t.Errorf("README example %d: %v", i+1, err)
		}
	}
}
