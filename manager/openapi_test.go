package manager

import (
	"bufio"
	"os"
	"reflect"
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

// TestOpenAPISchemasMatchTypes checks that each documented schema of an api
// type lists exactly that type's JSON fields.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, comp, ok := strings.Cut(string(b), "\n  schemas:\n")
	if !ok {
		t.Fatal("no components.schemas")
	}
	blocks := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(comp, "\n") {
		switch {
		case strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && strings.HasSuffix(line, ":"):
			cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
			blocks[cur] = []string{}
		case cur != "" && strings.HasPrefix(line, "        ") && !strings.HasPrefix(line, "         "):
			name, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			blocks[cur] = append(blocks[cur], name)
		}
	}
	for _, v := range []any{api.EnrollRequest{}, api.Heartbeat{}, api.HeartbeatResponse{}, api.EffectivePolicy{}, api.Computer{}, api.ComputerPatch{},
		api.Policy{}, api.PolicyRequest{}, api.EnrollmentToken{}, api.TokenRequest{}, api.RulePack{}, api.AlertRule{}, api.AlertRuleRequest{},
		api.Alert{}, api.Notifier{}, api.NotifierRequest{}, api.Settings{}, api.SettingsPatch{}, api.AuditEntry{}, api.APIKey{}, api.APIKeyRequest{}} {
		typ := reflect.TypeOf(v)
		var want []string
		for i := 0; i < typ.NumField(); i++ {
			if tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
				want = append(want, tag)
			}
		}
		got, ok := blocks[typ.Name()]
		if !ok {
			t.Errorf("openapi.yaml has no schema %s", typ.Name())
			continue
		}
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("schema %s lists %v, the Go type has %v", typ.Name(), got, want)
		}
	}
}
