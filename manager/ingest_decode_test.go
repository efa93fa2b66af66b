package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// genericBatch is how every other body is decoded: the reference that
// decodeBatch's fast path must agree with.
func genericBatch(b []byte) ([]event.Event, error) {
	var batch api.EventBatch
	err := decodeStrict(b, &batch)
	return batch.Events, err
}

const (
	ev1 = `{"id":"a1","time":"2026-01-02T03:04:05Z","kind":"malware.detection","severity":"high","message":"x {y} \"z\\"}`
	ev2 = `{"id":"a2","time":"2026-01-02T03:04:05Z","kind":"log.alert","severity":"low","message":"m","rule":{"id":"r1"},"evidence":["[","{"]}`
)

var batchCases = []struct {
	name string
	body string
	fast bool   // the split path keeps each event's bytes
	code int    // 0: decodes
	fld  string // the error's field
}{
	{"two events", `{"events":[` + ev1 + `,` + ev2 + `]}`, true, 0, ""},
	{"whitespace", " \n{ \"events\" :\t[ " + ev1 + " ,\r\n" + ev2 + " ] } \n", true, 0, ""},
	{"empty", `{"events":[]}`, true, 0, ""},
	{"null events", `{"events":null}`, false, 0, ""},
	{"no events key", `{}`, false, 0, ""},
	{"key case", `{"Events":[` + ev1 + `]}`, false, 400, "Events"},
	{"unknown top-level field", `{"events":[` + ev1 + `],"extra":1}`, false, 400, "extra"},
	{"unknown event field", `{"events":[{"id":"a","bogus":1}]}`, false, 400, "events[0].bogus"},
	{"wrong type", `{"events":[{"id":5}]}`, false, 400, "events[0].id"},
	{"not an object", `{"events":[1]}`, false, 400, "events[0]"},
	{"trailing value", `{"events":[]} {}`, false, 400, ""},
	{"truncated", `{"events":[` + ev1, false, 400, ""},
	{"unbalanced", `{"events":[{"id":"a"]}]}`, false, 400, ""},
	{"empty body", ``, false, 400, ""},
}

func TestDecodeBatch(t *testing.T) {
	for _, tc := range batchCases {
		t.Run(tc.name, func(t *testing.T) {
			evs, raw, err := decodeBatchInto([]byte(tc.body), nil)
			var ae *apiError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("error %v", err)
			case tc.code != 0 && (!errors.As(err, &ae) || ae.status != tc.code || ae.field != tc.fld):
				t.Fatalf("error %#v, want %d field %q", err, tc.code, tc.fld)
			case (raw != nil) != tc.fast:
				t.Fatalf("fast path %v, want %v", raw != nil, tc.fast)
			}
			want, werr := genericBatch([]byte(tc.body))
			if (werr == nil) != (err == nil) || (err != nil && err.Error() != werr.Error()) || (err == nil && !reflect.DeepEqual(evs, want)) {
				t.Fatalf("decodeBatch = %v, %v; generic decode = %v, %v", evs, err, want, werr)
			}
			for i := range raw {
				var e event.Event
				if err := json.Unmarshal(raw[i], &e); err != nil || !reflect.DeepEqual(e, evs[i]) {
					t.Fatalf("raw[%d] = %s decodes to %+v, %v; want %+v", i, raw[i], e, err, evs[i])
				}
			}
		})
	}
}

// FuzzDecodeBatch: for any body the fast path answers exactly what the
// generic decode does, and every kept object decodes to its event.
func FuzzDecodeBatch(f *testing.F) {
	for _, tc := range batchCases {
		f.Add([]byte(tc.body))
	}
	// A slice that held a batch with every field set: decoding into it
	// again must leave nothing of that batch behind.
	uid := 7
	full := event.Event{ID: "f", Kind: event.KindLogAlert, Module: "m", Host: "h", ComputerID: "c", Message: "x", Action: "a", Protocol: "tcp", Raw: "r", Count: 3,
		Rule: &event.Rule{ID: "r", Tags: []string{"t"}}, Src: &event.Endpoint{IP: "192.0.2.1", Port: 1}, Dst: &event.Endpoint{IP: "192.0.2.2"},
		File: &event.File{Path: "/p", UID: &uid}, Process: &event.Process{PID: 1}, User: &event.User{Name: "u"}, DNS: &event.DNS{Query: "q"},
		HTTP: &event.HTTP{Method: "GET"}, Cloud: &event.Cloud{Provider: "aws"}, Changes: []event.Change{{Attr: "a"}}, Evidence: []string{"e"}, Fields: map[string]string{"k": "v"}}
	fullBody, err := json.Marshal(api.EventBatch{Events: []event.Event{full, full, full, full}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dirty, _, err := decodeBatchInto(fullBody, nil)
		if err != nil {
			t.Fatal(err)
		}
		evs, raw, err := decodeBatchInto(body, dirty[:0])
		want, werr := genericBatch(body)
		if (werr == nil) != (err == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("decodeBatch error %v, generic %v", err, werr)
		}
		if err == nil && !reflect.DeepEqual(evs, want) {
			t.Fatalf("decodeBatch = %+v, generic = %+v", evs, want)
		}
		for i := range raw {
			var e event.Event
			if err := json.Unmarshal(raw[i], &e); err != nil || !reflect.DeepEqual(e, evs[i]) {
				t.Fatalf("raw[%d] = %q decodes to %+v, %v; want %+v", i, raw[i], e, err, evs[i])
			}
		}
	})
}

func TestStamp(t *testing.T) {
	c := &api.Computer{ID: "c_cert", Host: api.HostInfo{Hostname: "web-\"1\""}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, raw string
		same      bool // stored as sent
	}{
		{"agent's own", `{"id":"a","computer_id":"c_cert","host":"h"}`, true},
		{"no computer", `{"id":"a","host":"h"}`, false},
		{"no host", `{"id":"a","computer_id":"c_cert"}`, false},
		{"claims another computer", `{"id":"a","computer_id":"c_other","host":"h"}`, false},
		{"claims it twice, any case", `{"id":"a","Computer_ID":"c_other","computer_id":"c_x" }`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e event.Event
			if err := json.Unmarshal([]byte(tc.raw), &e); err != nil {
				t.Fatal(err)
			}
			e.Time = at
			var s stamper
			got := s.stamp([]byte(tc.raw), &e, c)
			if e.ComputerID != "" && e.ComputerID != c.ID {
				// a false claim: the handler encodes the event anew
				if got != nil {
					t.Fatalf("stamp of a claim of %s = %s, want nil", e.ComputerID, got)
				}
				e.ComputerID = c.ID
				if e.Host == "" {
					e.Host = c.Host.Hostname
				}
				if got, _ = json.Marshal(&e); bytes.Contains(got, []byte("c_other")) {
					t.Fatalf("re-encoded %s still names the claimed computer", got)
				}
			}
			if (string(got) == tc.raw) != tc.same {
				t.Fatalf("stamp = %s", got)
			}
			var back event.Event
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("stamped %s: %v", got, err)
			}
			wantHost := e.Host
			if wantHost == "" {
				wantHost = c.Host.Hostname
			}
			if back.ComputerID != c.ID || back.Host != wantHost {
				t.Fatalf("stored %s reads back as computer %q host %q", got, back.ComputerID, back.Host)
			}
		})
	}
}
