package sigma

import (
	"os"
	"sort"
	"strings"
	"testing"
)

const sigmaCorpus = "../../../shared/corpus/sigma-rules/"

// TestSigmaHQCorpus loads the SigmaHQ rules of the shared corpus and prints
// how many load, how many have a log source mamori reads, and why the rest
// do not load.
func TestSigmaHQCorpus(t *testing.T) {
	if _, err := os.Stat(sigmaCorpus); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("corpus missing: %v", err)
		}
		t.Skipf("corpus sigma-rules not found: %v", err)
	}
	s := NewSet(false)
	for _, d := range []string{"rules", "rules-emerging-threats", "rules-threat-hunting"} {
		if err := s.LoadPaths(sigmaCorpus + d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	loaded, active, failed := s.Stats()
	total := loaded + failed
	t.Logf("SigmaHQ corpus: %d/%d rules load (%.1f%%), %d of them have a log source mamori reads", loaded, total, 100*float64(loaded)/float64(total), active)
	reasons := map[string]int{}
	for _, e := range s.Errors {
		reasons[e.Reason]++
		t.Logf("  skipped: %v", e)
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("  %d × %s", reasons[k], k)
	}
	if float64(loaded)/float64(total) < 0.95 {
		t.Errorf("only %d/%d SigmaHQ rules load", loaded, total)
	}
	inactive := map[string]int{}
	for _, r := range s.Rules {
		if !r.Active() {
			ls := r.Logsource
			inactive[strings.Trim(ls.Product+"/"+ls.Category+"/"+ls.Service, "/")]++
		}
	}
	t.Logf("  loaded but no source here (by logsource): %v", inactive)
	for _, r := range s.Rules {
		if r.Author == "" && r.Active() {
			t.Logf("  note: rule %s has no author", r.Ref())
		}
	}
}
