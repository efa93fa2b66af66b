package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
)

// FuzzDecodeBody: every API body either decodes or yields an apiError with a
// 4xx status and a message safe to show — never a panic or a 5xx — and an
// unknown field always comes back named (by strictjson, not by reading
// encoding/json's error text).
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"web","max_uses":3}`,
		`{"name":"web","bogus":1}`,
		`{"max_uses":"three"}`,
		`{"name":"a"} {"name":"b"}`,
		`{"name":`,
		``,
		`[]`,
		`{"policy":{"x":1}}`,
		`{"hb":` + strings.Repeat("[", 100),
		`{"events":[{"id":"a","kind":"k","severity":"high"},{"id":"b","Kind":"k"}]}`,
		`{"modules":{"integrity":{"enabled":"yes"}}}`,
		`{"tags":["a",1]}`,
		`{"name":"a","bogus":1} {}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&api.TokenRequest{}, &api.PolicyRequest{}, &api.Heartbeat{}, &api.EventBatch{}} {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			err := decode(httptest.NewRecorder(), r, 4096, v)
			if err == nil {
				continue
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("decode(%q) = %v (%T), want an *apiError", body, err, err)
			}
			if ae.status != http.StatusBadRequest && ae.status != http.StatusRequestEntityTooLarge || ae.msg == "" {
				t.Fatalf("decode(%q) = status %d %q, want 400/413 with a message", body, ae.status, ae.msg)
			}
			if strings.Contains(ae.msg, "unknown field") && ae.msg != fmt.Sprintf("unknown field %q", ae.field) {
				t.Fatalf("decode(%q) = %q field %q: an unknown field not named by strictjson", body, ae.msg, ae.field)
			}
		}
	})
}

// BenchmarkDecodeEventBatch prices decode's strictjson pass on the hottest
// body, an agent's event batch (500 events): "decode" is what handlers
// run, "encoding-json" the typed decode alone that it used to be.
func BenchmarkDecodeEventBatch(b *testing.B) {
	body, err := json.Marshal(api.EventBatch{Events: managertest.Events(500, "logs", event.SeverityHigh)})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var v api.EventBatch
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			if err := decode(httptest.NewRecorder(), r, api.MaxBodyBytes, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var v api.EventBatch
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
