package manager

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// richEvents uses every field of event.Event, the way agents fill them.
func richEvents(t testing.TB) [][]byte {
	uid, gid := 1000, -1
	mt := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600))
	evs := []event.Event{
		{ID: "01", Time: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Kind: event.KindLogAlert, Severity: event.SeverityMedium, Module: "loginspect",
			Host: "web-1", ComputerID: "c_1", Message: "sshd: Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2", Action: "alerted",
			Rule: &event.Rule{ID: "r", Name: "n", Source: "s", Version: "1", Author: "a", Tags: []string{"t1", "t2"}, Refs: []string{}},
			Src:  &event.Endpoint{IP: "203.0.113.7", Port: 52144, Hostname: "h", Interface: "eth0"}, Dst: &event.Endpoint{IP: "::1"},
			Protocol: "tcp", User: &event.User{Name: "admin", UID: &uid}, Evidence: []string{"line 1", "ünïcödé ✓"}, Count: 3, Raw: "raw <&>",
			Fields: map[string]string{"a": "b", "": "empty"}},
		{ID: "02", Time: time.Now(), Kind: event.KindIntegrityChange, Severity: event.SeverityHigh, Message: "/etc/passwd modified",
			File: &event.File{Path: "/etc/passwd", Size: 1843, Mode: "0644", UID: &uid, GID: &gid, Owner: "root", Inode: 1 << 40, MTime: &mt,
				Hashes: map[string]string{"sha256": "9f86"}, Type: "regular", Inner: "x/y"},
			Changes: []event.Change{{Attr: "sha256", Old: "e3", New: "9f"}, {Attr: "mode"}},
			Process: &event.Process{PID: 42, PPID: 1, Exe: "/bin/x", Cmdline: "x -y", UID: &uid, User: "root"}},
		{ID: "03", Time: time.Unix(0, 0).UTC(), Kind: event.KindDNSBlock, Severity: event.SeverityInfo, DNS: &event.DNS{Query: "q", Type: "A", RCode: "NXDOMAIN"},
			HTTP:  &event.HTTP{Method: "GET", URL: "/", Host: "h", UserAgent: "ua", Status: 404},
			Cloud: &event.Cloud{Provider: "aws", Account: "1", Region: "r", ResourceType: "t", ResourceID: "i", Name: "n"}},
	}
	var out [][]byte
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestFastEvent(t *testing.T) {
	cases := richEvents(t)
	for _, s := range []string{
		` { "id" : "a" , "severity":"low", "changes":[], "evidence":[], "fields":{}, "rule":{} } `,
		`{"id":"a","time":"2026-01-02T03:04:05Z"}`,
	} {
		cases = append(cases, []byte(s))
	}
	for i, b := range cases {
		var got, want event.Event
		if !fastEvent(b, &got) {
			t.Errorf("case %d: fastEvent refused %s", i, b)
			continue
		}
		if err := decodeStrict(b, &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("case %d: fastEvent = %+v\nencoding/json = %+v, %v", i, got, want, err)
		}
	}
	// Outside the plain subset: encoding/json decides.
	for _, s := range []string{
		`{"ID":"a"}`, `{"\u0069d":"a"}`, `{"id":"a","id":"b"}`, `{"id":null}`, `{"count":1.0}`, `{"count":01}`,
		`{"count":1e3}`, `{"severity":3}`, `{"severity":"loud"}`, `{"time":"yesterday"}`, `{"bogus":1}`, `{"rule":{"id":"a","id":"b"}}`,
		`{"fields":{"a":"1","a":"2"}}`, `{"file":{"inode":-1}}`, `{"id":"a"} x`, `{"count":1234567890123456789}`,
	} {
		var e event.Event
		if fastEvent([]byte(s), &e) {
			t.Errorf("fastEvent took %s", s)
		}
	}
}

// FuzzFastEvent: whatever fastEvent takes, encoding/json decodes the same.
func FuzzFastEvent(f *testing.F) {
	for _, b := range richEvents(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"id":"a","severity":"low","changes":[],"evidence":[],"fields":{},"rule":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want event.Event
		if !fastEvent(b, &got) {
			return
		}
		if err := decodeStrict(b, &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("fastEvent(%q) = %+v\nencoding/json = %+v, %v", b, got, want, err)
		}
	})
}
