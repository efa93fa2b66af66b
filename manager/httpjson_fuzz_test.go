package manager

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/api"
)

// FuzzDecodeBody: every API body either decodes or yields an apiError with a
// 4xx status and a message safe to show — never a panic or a 5xx.
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
		}
	})
}
