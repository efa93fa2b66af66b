package manager

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// postEvents sends a raw upload body with a Content-Encoding and returns
// the status and the decoded answer (IngestResult or ErrorBody).
func postEvents(t *testing.T, a *managertest.Agent, encoding string, body []byte) (int, api.IngestResult, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, a.URL+api.PathAgentEvents, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res api.IngestResult
	var eb api.ErrorBody
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
	} else {
		_ = json.Unmarshal(b, &eb)
	}
	return resp.StatusCode, res, eb
}

func TestIngestGzip(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		body, err := json.Marshal(api.EventBatch{Events: managertest.Events(500, "antimalware", event.SeverityHigh)})
		if err != nil {
			t.Fatal(err)
		}
		count := func() int {
			n, err := e.m.Store().CountEvents(ctx, a.TenantID)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, tc := range []struct {
			name, encoding string
			body           []byte
			status         int
			field, message string
			stored         int // events in the store afterwards
		}{
			{name: "gzip", encoding: "gzip", body: gzipped(t, body), status: 200, stored: 500},
			{name: "gzip resent", encoding: "gzip", body: gzipped(t, body), status: 200, stored: 500},
			{name: "other encoding", encoding: "br", body: body, status: 415, field: "Content-Encoding", message: `"br"`, stored: 500},
			{name: "two encodings", encoding: "gzip, gzip", body: gzipped(t, gzipped(t, body)), status: 415, field: "Content-Encoding", stored: 500},
			{name: "not gzip", encoding: "gzip", body: body, status: 400, field: "Content-Encoding", message: "gzip", stored: 500},
			{name: "truncated gzip", encoding: "gzip", body: gzipped(t, body)[:200], status: 400, field: "Content-Encoding", stored: 500},
			// 17 MiB of zeros compress to a few KB: the limit applies to
			// what it decompresses to, and the answer names it.
			{name: "zip bomb", encoding: "gzip", body: gzipped(t, make([]byte, api.MaxBodyBytes+1<<20)), status: 413,
				message: fmt.Sprint(api.MaxBodyBytes), stored: 500},
			// Exactly at the limit is not over it: it is refused as JSON,
			// not as too large.
			{name: "at the limit", encoding: "gzip", body: gzipped(t, append(body, bytes.Repeat([]byte(" "), api.MaxBodyBytes-len(body))...)),
				status: 200, stored: 500},
		} {
			code, res, eb := postEvents(t, a, tc.encoding, tc.body)
			if code != tc.status || eb.Error.Field != tc.field || !strings.Contains(eb.Error.Message, tc.message) {
				t.Errorf("%s: %d %+v %+v, want %d field %q message containing %q", tc.name, code, res, eb, tc.status, tc.field, tc.message)
			}
			if n := count(); n != tc.stored {
				t.Errorf("%s: %d events stored, want %d", tc.name, n, tc.stored)
			}
			if tc.name == "gzip resent" && (res.Accepted != 0 || res.Duplicates != 500) {
				t.Errorf("resent gzip batch = %+v, want 500 duplicates", res)
			}
		}
	})
}
