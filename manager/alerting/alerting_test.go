package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/event"
)

type matchCase struct {
	Name     string      `json:"name"`
	Event    event.Event `json:"event"`
	Computer struct {
		ID    string   `json:"id"`
		Group string   `json:"group"`
		Tags  []string `json:"tags"`
	} `json:"computer"`
	Want []RuleID `json:"want"`
}

type matchFile struct {
	Rules json.RawMessage `json:"rules"`
	Cases []matchCase     `json:"cases"`
}

func TestMatchTable(t *testing.T) {
	files, err := filepath.Glob("testdata/match/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no match cases: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var mf matchFile
		if err := json.Unmarshal(data, &mf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		specs, err := DecodeRules(strings.NewReader(string(mf.Rules)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, err := Compile(specs)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range mf.Cases {
			t.Run(filepath.Base(f)+"/"+tc.Name, func(t *testing.T) {
				c := Computer{ID: tc.Computer.ID, Group: tc.Computer.Group, Tags: tc.Computer.Tags}
				got := m.Match(&tc.Event, c)
				if len(got) == 0 && len(tc.Want) == 0 {
					return
				}
				if !slices.Equal(got, tc.Want) {
					t.Errorf("Match(%s, %+v) = %v, want %v", tc.Event.ID, c, got, tc.Want)
				}
			})
		}
	}
}

type decodeCase struct {
	Name  string `json:"name"`
	Input string `json:"input"`
	Error string `json:"error"`
	Field string `json:"field"`
}

func loadDecodeCases(tb testing.TB) []decodeCase {
	data, err := os.ReadFile("testdata/decode_errors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var cases []decodeCase
	if err := json.Unmarshal(data, &cases); err != nil {
		tb.Fatal(err)
	}
	return cases
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range loadDecodeCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := DecodeRules(strings.NewReader(tc.Input))
			if err == nil {
				t.Fatalf("DecodeRules(%s) = nil error, want %q", tc.Input, tc.Error)
			}
			if !strings.Contains(err.Error(), tc.Error) {
				t.Errorf("DecodeRules(%s) = %q, want it to contain %q", tc.Input, err, tc.Error)
			}
			if tc.Field != "" {
				var re *RuleError
				if !errors.As(err, &re) || re.Field != tc.Field {
					t.Errorf("DecodeRules(%s) field = %+v, want %q", tc.Input, re, tc.Field)
				}
			}
		})
	}
}

func TestDecodeRuleRoundTrip(t *testing.T) {
	in := `{"id":"r1","name":"n","enabled":false,"modules":["antimalware"],"kinds":["malware.*"],"min_severity":"high","rules":["x*"],"groups":["g"],"tags":["t"],"computers":["c"],"contains":"evil","notifiers":["soc"]}`
	s, err := DecodeRule([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
}

func TestCompileKeepsGoodRules(t *testing.T) {
	specs := []RuleSpec{
		{ID: "good"},
		{ID: "bad", MinSeverity: MinSeverity(99)},
		{ID: "good"},
		{ID: "other", Kinds: []string{"log.*"}},
	}
	m, err := Compile(specs)
	if err == nil {
		t.Fatal("Compile = nil error, want errors for the bad and the duplicate rule")
	}
	for _, want := range []string{`alert rule 1 "bad": field "min_severity"`, `alert rule 2 "good": field "id": duplicate rule id`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Compile error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, ErrDuplicateID) {
		t.Errorf("Compile error does not wrap ErrDuplicateID")
	}
	if m.Len() != 2 {
		t.Errorf("Compile kept %d rules, want 2", m.Len())
	}
	ev := &event.Event{Kind: event.KindLogAlert}
	if got := m.Match(ev, Computer{}); !slices.Equal(got, []RuleID{"good", "other"}) {
		t.Errorf("Match = %v, want [good other]", got)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything/at.all", true},
		{"a*", "abc", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*.detection", "malware.detection", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"日*", "日本", true},
		{"?", "日", true},
		{"**a", "bba", true},
	}
	for _, tc := range tests {
		if got := compileGlob(tc.p).match(tc.s); got != tc.want {
			t.Errorf("glob(%q).match(%q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

// BenchmarkMatch: 50 rules of the usual shapes against a stream of mixed
// events, the cost ingest pays per event.
func BenchmarkMatch(b *testing.B) {
	var specs []RuleSpec
	for i := 0; i < 10; i++ {
		specs = append(specs,
			RuleSpec{ID: RuleID(fmt.Sprintf("sev-%d", i)), MinSeverity: MinSeverity(event.SeverityHigh), Modules: []string{"antimalware", "integrity"}},
			RuleSpec{ID: RuleID(fmt.Sprintf("kind-%d", i)), Kinds: []string{"malware.*", "log.alert"}, Groups: []string{"web"}},
			RuleSpec{ID: RuleID(fmt.Sprintf("rule-%d", i)), Rules: []string{"mamori-ssh-*", "clamav:*"}},
			RuleSpec{ID: RuleID(fmt.Sprintf("tag-%d", i)), Tags: []string{"prod", "eu"}, MinSeverity: MinSeverity(event.SeverityMedium)},
			RuleSpec{ID: RuleID(fmt.Sprintf("text-%d", i)), Contains: "/etc/shadow"},
		)
	}
	m, err := Compile(specs)
	if err != nil {
		b.Fatal(err)
	}
	evs := []event.Event{
		{Kind: event.KindLogAlert, Severity: event.SeverityMedium, Module: "loginspect", Message: "Failed password for root", Rule: &event.Rule{ID: "mamori-ssh-bruteforce"}},
		{Kind: event.KindFirewallDrop, Severity: event.SeverityLow, Module: "firewall", Message: "dropped tcp/23"},
		{Kind: event.KindMalwareDetection, Severity: event.SeverityCritical, Module: "antimalware", Message: "Eicar", Rule: &event.Rule{ID: "clamav:Eicar"}},
	}
	c := Computer{ID: "c-1", Group: "web", Tags: []string{"prod"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Match(&evs[i%len(evs)], c)
	}
}
