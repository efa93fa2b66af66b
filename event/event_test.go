package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sample() Event {
	uid := 0
	return Event{
		ID: "0193a", Time: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), Kind: KindLogAlert,
		Severity: SeverityHigh, Module: "loginspect", Host: "web-1", Message: "SSH brute force",
		Rule: &Rule{ID: "mamori-ssh-bruteforce", Name: "SSH brute | force", Author: "mamori"},
		Src:  &Endpoint{IP: "10.3.98.76", Port: 4415}, User: &User{Name: "trend", UID: &uid},
		Evidence: []string{"Failed password for trend from 10.3.98.76 port 4415 ssh2"},
	}
}

func TestEncoders(t *testing.T) {
	e := sample()
	tests := []struct {
		name string
		got  string
		want []string
	}{
		{"cef", e.CEF("0.1"), []string{"CEF:0|mamori|mamori|0.1|mamori-ssh-bruteforce|SSH brute \\| force|8|", "src=10.3.98.76", "spt=4415", "duser=trend"}},
		{"leef", e.LEEF("0.1"), []string{"LEEF:2.0|mamori|mamori|0.1|mamori-ssh-bruteforce|x09|sev=", "\tsrc=10.3.98.76", "\tusrName=trend"}},
		{"syslog", e.Syslog(0, "", "hello"), []string{"<131>1 2026-11-25T03:00:00Z web-1 mamori - log.alert [mamori@53595 id=\"0193a\" kind=\"log.alert\"] hello"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.got, w) {
					t.Errorf("%s = %q, want it to contain %q", tc.name, tc.got, w)
				}
			}
		})
	}
}

func TestOCSFAndJSONRoundTrip(t *testing.T) {
	e := sample()
	b, err := e.MarshalOCSF()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["class_uid"].(float64) != 2004 || m["severity_id"].(float64) != 4 {
		t.Errorf("OCSF() = class %v severity %v, want 2004 4", m["class_uid"], m["severity_id"])
	}
	raw, _ := json.Marshal(e)
	var back Event
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Severity != SeverityHigh || back.Src.IP != "10.3.98.76" {
		t.Errorf("round trip = %+v", back)
	}
}

func TestNewIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := NewID()
		if seen[id] {
			t.Fatalf("NewID repeated %s", id)
		}
		seen[id] = true
	}
}

func TestValidate(t *testing.T) {
	e := sample()
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	e.Kind = ""
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("Validate() = %v, want error naming kind", err)
	}
}

func FuzzSeverityText(f *testing.F) {
	for _, s := range severityNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v Severity
		if err := v.UnmarshalText([]byte(s)); err == nil {
			b, _ := v.MarshalText()
			if string(b) != s && s != "informational" {
				t.Errorf("round trip %q -> %q", s, b)
			}
		}
	})
}
