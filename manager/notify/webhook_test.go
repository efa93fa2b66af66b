package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var fastRetry = &Backoff{Attempts: 4, Initial: Duration(5 * time.Millisecond), Max: Duration(20 * time.Millisecond)}

type received struct {
	header http.Header
	body   []byte
}

// flakyServer answers the first fails requests with status, then 200.
func flakyServer(t *testing.T, fails int, status int) (*httptest.Server, func() []received) {
	var mu sync.Mutex
	var got []received
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), b})
		mu.Unlock()
		if int(n.Add(1)) <= fails {
			http.Error(w, "not now", status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func webhookConfig(t *testing.T, url, extra string) Notifier {
	t.Helper()
	raw := `{"name":"soc","type":"webhook","retry":{"attempts":4,"initial":"5ms","max":"20ms"},"settings":{"url":"` + url + `","secret":"s3cret","headers":{"X-Team":"blue"}` + extra + `}}`
	c, err := DecodeConfig([]byte(raw))
	if err != nil {
		t.Fatalf("DecodeConfig: %v", err)
	}
	n, err := New(c, Options{ProductVersion: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type results struct {
	mu  sync.Mutex
	all []Result
	fin chan Result
}

func newResults() *results { return &results{fin: make(chan Result, 100)} }

func (r *results) add(x Result) {
	r.mu.Lock()
	r.all = append(r.all, x)
	r.mu.Unlock()
	if x.Final {
		r.fin <- x
	}
}

func (r *results) final(t *testing.T) Result {
	t.Helper()
	select {
	case x := <-r.fin:
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no final result within 10s")
	}
	return Result{}
}

func TestWebhookRetriesThenSucceeds(t *testing.T) {
	srv, got := flakyServer(t, 2, http.StatusServiceUnavailable)
	n := webhookConfig(t, srv.URL, "")
	res := newResults()
	d := NewDispatcher(DispatcherConfig{Workers: 2, OnResult: res.add})
	defer d.Close(context.Background())
	if !d.Enqueue(n, testAlert()) {
		t.Fatal("Enqueue refused an alert on an empty queue")
	}
	if r := res.final(t); r.Err != nil || r.Attempt != 3 {
		t.Fatalf("final result = %+v, want success on attempt 3", r)
	}
	reqs := got()
	if len(reqs) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(reqs))
	}
	st := d.Stats()
	if st.Sent != 1 || st.Retried != 2 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want sent 1, retried 2", st)
	}
	last := reqs[2]
	ts, sig := last.header.Get(HeaderTimestamp), last.header.Get(HeaderSignature)
	if err := VerifySignature([]byte("s3cret"), ts, sig, last.body, time.Now(), time.Minute); err != nil {
		t.Errorf("VerifySignature(%q, %q) = %v", ts, sig, err)
	}
	if err := VerifySignature([]byte("other"), ts, sig, last.body, time.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifySignature with the wrong secret = %v, want ErrBadSignature", err)
	}
	if h := last.header; h.Get("Content-Type") != "application/json" || h.Get("X-Team") != "blue" || h.Get(HeaderAlertID) != "al-1" || h.Get("User-Agent") != "mamori/0.1.0" {
		t.Errorf("headers = %v", h)
	}
	var body struct {
		ID       string      `json:"id"`
		Tenant   string      `json:"tenant"`
		Rule     RuleRef     `json:"rule"`
		Computer ComputerRef `json:"computer"`
		Count    int         `json:"count"`
		Format   string      `json:"format"`
		Events   []struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		} `json:"events"`
	}
	if err := json.Unmarshal(last.body, &body); err != nil {
		t.Fatalf("body %s: %v", last.body, err)
	}
	if body.ID != "al-1" || body.Tenant != "t-acme" || body.Rule.ID != "ssh-brute" || body.Computer.Hostname != "web-1" ||
		body.Count != 3 || body.Format != "json" || len(body.Events) != 2 || body.Events[1].Kind != "malware.detection" {
		t.Errorf("body = %+v", body)
	}
}

func TestWebhookOCSF(t *testing.T) {
	srv, got := flakyServer(t, 0, 0)
	n := webhookConfig(t, srv.URL, `,"format":"ocsf"`)
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Format string           `json:"format"`
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(got()[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Format != "ocsf" || body.Events[1]["class_uid"] != float64(2004) {
		t.Errorf("OCSF body = %+v", body)
	}
}

func TestWebhook4xxIsNotRetried(t *testing.T) {
	srv, got := flakyServer(t, 100, http.StatusBadRequest)
	n := webhookConfig(t, srv.URL, "")
	res := newResults()
	d := NewDispatcher(DispatcherConfig{OnResult: res.add})
	defer d.Close(context.Background())
	d.Enqueue(n, testAlert())
	r := res.final(t)
	var se *StatusError
	if !IsPermanent(r.Err) || !errors.As(r.Err, &se) || se.Code != 400 || r.Attempt != 1 {
		t.Fatalf("final result = %+v, want a permanent 400 on attempt 1", r)
	}
	if len(got()) != 1 {
		t.Errorf("server saw %d requests, want 1", len(got()))
	}
	if st := d.Stats(); st.Failed != 1 || st.Retried != 0 {
		t.Errorf("Stats = %+v, want failed 1, retried 0", st)
	}
}

func TestWebhookNetworkErrorIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	n := webhookConfig(t, "http://"+addr+"/hook", `,"timeout":"2s"`)
	res := newResults()
	d := NewDispatcher(DispatcherConfig{OnResult: res.add})
	defer d.Close(context.Background())
	d.Enqueue(n, testAlert())
	r := res.final(t)
	if r.Err == nil || IsPermanent(r.Err) || r.Attempt != fastRetry.Attempts {
		t.Fatalf("final result = %+v, want a retryable error after %d attempts", r, fastRetry.Attempts)
	}
	if st := d.Stats(); st.Failed != 1 || st.Retried != int64(fastRetry.Attempts-1) {
		t.Errorf("Stats = %+v", st)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
