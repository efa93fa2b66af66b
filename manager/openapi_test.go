package manager

import (
	"bufio"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/api"
)

// TestOpenAPIMatchesRoutes checks openapi.yaml lists exactly the routes the
// server registers, method by method.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f, err := os.Open("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRe := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRe := regexp.MustCompile(`^    (get|put|post|patch|delete):\s*$`)
	doc := map[string]bool{}
	cur, inPaths := "", false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && len(line) > 0 && line[0] != ' ' && line[0] != '#':
			inPaths = false
		case inPaths && pathRe.MatchString(line):
			cur = pathRe.FindStringSubmatch(line)[1]
		case inPaths && methodRe.MatchString(line):
			doc[strings.ToUpper(methodRe.FindStringSubmatch(line)[1])+" "+cur] = true
		}
	}
	served := map[string]bool{"GET " + api.PathMetrics: true}
	m := &Manager{}
	for _, r := range m.routeTable() {
		served[r.method+" "+r.path] = true
	}
	var missing, extra []string
	for k := range served {
		if !doc[k] {
			missing = append(missing, k)
		}
	}
	for k := range doc {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("openapi.yaml out of date:\n served, not documented: %v\n documented, not served: %v", missing, extra)
	}
	if len(served) < 40 {
		t.Fatalf("only %d routes: parsing went wrong", len(served))
	}
}
