package client

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mamori-sec/mamori/api"
)

// uploadRecorder is a manager stand-in that records each upload's
// Content-Encoding and checks the body decodes to the batch, refusing gzip
// with 415 when old is set (a manager from before gzip support).
type uploadRecorder struct {
	old  bool
	mu   sync.Mutex
	encs []string
}

func (u *uploadRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	enc := r.Header.Get("Content-Encoding")
	u.mu.Lock()
	u.encs = append(u.encs, enc)
	u.mu.Unlock()
	if enc != "" && u.old {
		http.Error(w, `{"error":{"status":415,"message":"unsupported"}}`, http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = r.Body
	if enc == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	var b api.EventBatch
	if err := json.NewDecoder(body).Decode(&b); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	json.NewEncoder(w).Encode(api.IngestResult{Accepted: len(b.Events)})
}

func events(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(fmt.Sprintf(`{"id":"e%d","time":"2026-01-01T00:00:00Z","kind":"log.alert","severity":"low","message":"sshd: Failed password for root"}`, i))
	}
	return out
}

func TestUploadGzip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		above int
		n     int
		old   bool
		want  []string // Content-Encoding of each request
	}{
		{name: "small batch goes plain", n: 2, want: []string{""}},
		{name: "large batch goes gzip'd", n: 200, want: []string{"gzip"}},
		{name: "gzip off", above: -1, n: 200, want: []string{""}},
		{name: "old manager: plain after 415", n: 200, old: true, want: []string{"gzip", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &uploadRecorder{old: tc.old}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			c := &Client{base: srv.URL, hc: srv.Client(), GzipAbove: tc.above}
			res, err := c.Upload(context.Background(), events(tc.n))
			if err != nil || res.Accepted != tc.n {
				t.Fatalf("Upload = %+v, %v", res, err)
			}
			if strings.Join(rec.encs, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("encodings %q, want %q", rec.encs, tc.want)
			}
			if tc.old {
				// Remembered: the next upload does not try gzip again.
				rec.encs = nil
				if _, err := c.Upload(context.Background(), events(tc.n)); err != nil || len(rec.encs) != 1 || rec.encs[0] != "" {
					t.Fatalf("second upload: encodings %q, %v", rec.encs, err)
				}
			}
		})
	}
}
