package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook headers. The signature covers "<timestamp>.<body>" so a captured
// request cannot be replayed later with a fresh timestamp.
const (
	HeaderAlertID   = "X-Mamori-Alert-Id"
	HeaderTimestamp = "X-Mamori-Timestamp"
	HeaderSignature = "X-Mamori-Signature"
)

// WebhookConfig is the settings of a webhook notifier.
type WebhookConfig struct {
	URL string `json:"url"`
	// Secret, when set, signs each request with HMAC-SHA256.
	Secret  string            `json:"secret,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Format of the events in the body: "json" (mamori's event model,
	// default) or "ocsf".
	Format  string      `json:"format,omitempty"`
	Timeout Duration    `json:"timeout,omitempty"` // per attempt, default 10s
	TLS     TLSSettings `json:"tls,omitempty"`
}

// Webhook POSTs each alert as JSON.
type Webhook struct {
	retryPolicy
	name    string
	cfg     WebhookConfig
	client  *http.Client
	version string
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook validates cfg and returns the sender.
func NewWebhook(name string, cfg WebhookConfig, retry Backoff, opt Options) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fieldErr("settings.url", "want an absolute http or https URL")
	}
	switch cfg.Format {
	case "", "json", "ocsf":
	default:
		return nil, fieldErr("settings.format", "unknown format %q (want json or ocsf)", cfg.Format)
	}
	for k := range cfg.Headers {
		ck := http.CanonicalHeaderKey(k)
		if ck == "Content-Type" || ck == "Content-Length" || ck == "Host" || strings.HasPrefix(ck, "X-Mamori-") || k == "" {
			return nil, fieldErr("settings.headers."+k, "reserved header")
		}
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr("settings.timeout", "must not be negative")
	}
	tc, err := cfg.TLS.config("settings.tls.", u.Hostname())
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &Webhook{
		retryPolicy: retryPolicy{retry},
		name:        name,
		cfg:         cfg,
		version:     opt.ProductVersion,
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout.or(10 * time.Second),
			// A redirect of a signed POST is a misconfiguration to show,
			// not something to follow silently.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (w *Webhook) Name() string { return w.name }

// Body is the JSON a webhook receives.
type Body struct {
	Alert
	Events []any  `json:"events"`
	Format string `json:"format"`
}

func (w *Webhook) body(a Alert) ([]byte, error) {
	b := Body{Alert: a, Format: "json"}
	b.Events = make([]any, len(a.Events))
	for i := range a.Events {
		if w.cfg.Format == "ocsf" {
			b.Events[i] = a.Events[i].OCSF()
			b.Format = "ocsf"
		} else {
			b.Events[i] = &a.Events[i]
		}
	}
	return json.Marshal(b)
}

// Notify sends one POST. A network error or a 5xx, 408 or 429 answer is
// retryable; any other non-2xx answer is permanent.
func (w *Webhook) Notify(ctx context.Context, a Alert) error {
	body, err := w.body(a)
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: encoding alert: %w", w.name, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: building request: %w", w.name, err))
	}
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mamori/"+w.version)
	req.Header.Set(HeaderAlertID, a.ID)
	if w.cfg.Secret != "" {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign([]byte(w.cfg.Secret), ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: posting: %w", w.name, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	serr := &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(snippet)), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	err = fmt.Errorf("webhook %s: %w", w.name, serr)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
		return err
	}
	return Permanent(err)
}

// StatusError is a non-2xx webhook answer. RetryAfter is the receiver's
// Retry-After (429, 503), which the Dispatcher honours up to its back-off
// maximum.
type StatusError struct {
	Code       int
	Body       string
	RetryAfter time.Duration
}

// retryAfter reads Retry-After as seconds or an HTTP date; 0 when absent
// or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
}

// Sign returns the signature header value for a body sent at ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by VerifySignature.
var ErrBadSignature = errors.New("webhook signature does not verify")

// VerifySignature checks a received webhook (for receivers written in Go
// and for our tests); maxAge bounds the timestamp's age, 0 = unchecked.
func VerifySignature(secret []byte, ts, sig string, body []byte, now time.Time, maxAge time.Duration) error {
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sig)) {
		return ErrBadSignature
	}
	if maxAge > 0 {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: bad timestamp", ErrBadSignature)
		}
		if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
			return fmt.Errorf("%w: timestamp %s old", ErrBadSignature, d)
		}
	}
	return nil
}
