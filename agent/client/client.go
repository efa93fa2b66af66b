// Package client is the agent's side of the agent↔manager API (package
// api): enrolment with a token over verified TLS, then mTLS for heartbeats,
// policy and rule-pack downloads, event uploads, command acknowledgements and
// certificate renewal.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/rulepack"
)

// Sentinel outcomes callers branch on.
var (
	// ErrClone: the manager saw this certificate on another machine
	// (HTTP 409); the agent must enrol as a new computer.
	ErrClone = errors.New("manager reports this identity as a clone (409)")
	// ErrNotModified: the policy has the version we sent (HTTP 304).
	ErrNotModified = errors.New("not modified")
)

// StatusError is a non-2xx answer with the manager's message.
type StatusError struct {
	Method, Path string
	Status       int
	Message      string
	Field        string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// Permanent reports whether retrying the same request cannot help: the
// certificate was refused (deactivated computer) or the request is invalid.
func Permanent(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests && se.Status != http.StatusRequestTimeout
	}
	return false
}

// Client talks to the manager with the agent's client certificate.
type Client struct {
	dir  string
	base string
	hc   *http.Client
	tr   *http.Transport
	// GzipAbove: event uploads larger than this many bytes of JSON go
	// gzip'd (Content-Encoding: gzip); 0 means DefaultGzipAbove, a
	// negative value never. Smaller bodies are not worth the CPU.
	GzipAbove int
	// plainOnly is set once a manager answered a gzip'd upload with 415
	// (a manager older than gzip support): later uploads go plain.
	plainOnly atomic.Bool

	mu   sync.RWMutex
	cert *tls.Certificate
	id   Identity
}

// Load builds a client from an enrolled data directory.
func Load(dir string) (*Client, error) {
	id, err := LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	cert, err := loadPair(dir)
	if err != nil {
		return nil, err
	}
	pool, err := loadCAPool(dir)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(id.ManagerURL)
	if err != nil {
		return nil, fmt.Errorf("loading identity: field manager_url: %w", err)
	}
	c := &Client{dir: dir, base: id.ManagerURL, cert: cert, id: id}
	c.tr = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    pool,
			ServerName: u.Hostname(),
			// Read the current certificate on each handshake so a renewal
			// takes effect without rebuilding the client.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				c.mu.RLock()
				defer c.mu.RUnlock()
				return c.cert, nil
			},
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	c.hc = &http.Client{Transport: c.tr}
	return c, nil
}

// Identity returns the enrolled identity.
func (c *Client) Identity() Identity {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.id
}

// CertificateExpiry returns NotAfter of the current client certificate.
func (c *Client) CertificateExpiry() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cert.Leaf != nil {
		return c.cert.Leaf.NotAfter
	}
	return time.Time{}
}

// Close drops idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, hdr map[string]string, timeout time.Duration) (*http.Response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		// The body is read by the caller; cancel when it is closed.
		resp, err := c.doCtx(ctx, method, path, body, hdr)
		if err != nil {
			cancel()
			return nil, err
		}
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	return c.doCtx(ctx, method, path, body, hdr)
}

func (c *Client) doCtx(ctx context.Context, method, path string, body io.Reader, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.hc.Do(req)
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

func (c *Client) postJSON(ctx context.Context, path string, in, out any, timeout time.Duration) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding %s body: %w", path, err)
	}
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"}, timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeResponse(resp, out)
}

// decodeResponse turns a non-2xx answer into a *StatusError and decodes a
// 2xx JSON body into out (when out is not nil).
func decodeResponse(resp *http.Response, out any) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Method: resp.Request.Method, Path: resp.Request.URL.Path, Status: resp.StatusCode}
		var eb api.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			se.Message, se.Field = eb.Error.Message, eb.Error.Field
		} else {
			se.Message = strings.TrimSpace(string(b))
		}
		return se
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, api.MaxBodyBytes)).Decode(out); err != nil {
		return fmt.Errorf("decoding %s answer: %w", resp.Request.URL.Path, err)
	}
	return nil
}

// Heartbeat reports status. wait > 0 asks the manager to hold the answer up
// to that long until there is news (long poll). A 409 is ErrClone.
func (c *Client) Heartbeat(ctx context.Context, hb api.Heartbeat, wait time.Duration) (*api.HeartbeatResponse, error) {
	path := api.PathHeartbeat
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	var out api.HeartbeatResponse
	err := c.postJSON(ctx, path, hb, &out, wait+30*time.Second)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusConflict {
		return nil, fmt.Errorf("%w: %s", ErrClone, se.Message)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Policy fetches the effective policy; with etag set to the version the
// agent has, an unchanged policy returns ErrNotModified.
func (c *Client) Policy(ctx context.Context, etag string) (*api.EffectivePolicy, error) {
	hdr := map[string]string{"Accept": "application/json"}
	if etag != "" {
		hdr["If-None-Match"] = quoteETag(etag)
	}
	resp, err := c.do(ctx, http.MethodGet, api.PathAgentPolicy, nil, hdr, time.Minute)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, ErrNotModified
	}
	var p api.EffectivePolicy
	if err := decodeResponse(resp, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func quoteETag(v string) string {
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		return v
	}
	return `"` + v + `"`
}

// RulePack downloads one signed pack archive. It is not verified here:
// the caller verifies with rulepack.Open before using any of it.
func (c *Client) RulePack(ctx context.Context, name, version string) ([]byte, error) {
	p := api.PathAgentRulePack + url.PathEscape(name) + "/" + url.PathEscape(version)
	resp, err := c.do(ctx, http.MethodGet, p, nil, nil, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if err := decodeResponse(resp, nil); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("downloading rule pack %s/%s: HTTP %d", name, version, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, rulepack.MaxPackBytes+1))
	if err != nil {
		return nil, fmt.Errorf("downloading rule pack %s/%s: %w", name, version, err)
	}
	if len(b) > rulepack.MaxPackBytes {
		return nil, fmt.Errorf("downloading rule pack %s/%s: larger than %d bytes", name, version, rulepack.MaxPackBytes)
	}
	return b, nil
}

// Upload sends a batch of events (each already JSON) and returns the
// manager's counts. At most api.MaxBatchEvents per call.
func (c *Client) Upload(ctx context.Context, events []json.RawMessage) (*api.IngestResult, error) {
	if len(events) > api.MaxBatchEvents {
		return nil, fmt.Errorf("uploading: %d events, more than %d per batch", len(events), api.MaxBatchEvents)
	}
	body := uploadBody(events)
	above := c.GzipAbove
	if above == 0 {
		above = DefaultGzipAbove
	}
	if above > 0 && len(body) > above && !c.plainOnly.Load() {
		res, err := c.upload(ctx, gzipBody(body), "gzip")
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnsupportedMediaType {
			return res, err
		}
		c.plainOnly.Store(true)
	}
	return c.upload(ctx, body, "")
}

// DefaultGzipAbove is where compressing an upload starts to pay: event
// JSON shrinks five to tenfold, a few KB cost well under a millisecond.
const DefaultGzipAbove = 4 << 10

func uploadBody(events []json.RawMessage) []byte {
	n := len(`{"events":[]}`) + len(events)
	for _, e := range events {
		n += len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}

// gzipBody compresses at BestSpeed: the agent's CPU is the workload's,
// and on JSON the faster level gives most of the ratio.
func gzipBody(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) / 4)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level never fails
	_, _ = zw.Write(b)                                 // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	return buf.Bytes()
}

func (c *Client) upload(ctx context.Context, body []byte, encoding string) (*api.IngestResult, error) {
	hdr := map[string]string{"Content-Type": "application/json"}
	if encoding != "" {
		hdr["Content-Encoding"] = encoding
	}
	resp, err := c.do(ctx, http.MethodPost, api.PathAgentEvents, bytes.NewReader(body), hdr, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res api.IngestResult
	if err := decodeResponse(resp, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// AckCommand reports a command's outcome.
func (c *Client) AckCommand(ctx context.Context, id string, ack api.CommandAck) error {
	return c.postJSON(ctx, api.PathAgentCommand+url.PathEscape(id)+"/ack", ack, nil, time.Minute)
}

// Renew gets a certificate for a new key and swaps both in atomically (one
// file, one rename); later handshakes use the new pair.
func (c *Client) Renew(ctx context.Context) error {
	id := c.Identity()
	key, csr, err := newKeyAndCSR(id.ComputerID)
	if err != nil {
		return fmt.Errorf("renewing certificate: %w", err)
	}
	var out api.RenewResponse
	if err := c.postJSON(ctx, api.PathRenew, api.RenewRequest{CSR: string(csr)}, &out, time.Minute); err != nil {
		return fmt.Errorf("renewing certificate: %w", err)
	}
	der, err := checkIssued(out.Certificate, key)
	if err != nil {
		return fmt.Errorf("renewing certificate: field certificate: %w", err)
	}
	if strings.TrimSpace(out.CA) != "" {
		if err := writeCA(c.dir, []byte(out.CA)); err != nil {
			return fmt.Errorf("renewing certificate: %w", err)
		}
	}
	if err := writePEMPair(c.dir, der, key); err != nil {
		return fmt.Errorf("renewing certificate: %w", err)
	}
	pair, err := loadPair(c.dir)
	if err != nil {
		return fmt.Errorf("renewing certificate: %w", err)
	}
	c.mu.Lock()
	c.cert = pair
	c.mu.Unlock()
	c.tr.CloseIdleConnections()
	return nil
}

func writeSecret(file string, b []byte) error { return atomicfile.Write(file, b, 0o600) }

// RemoveIdentity deletes the enrolled identity (before re-enrolling as a
// new computer after a clone report). The token file is kept.
func RemoveIdentity(dir string) error {
	for _, f := range []string{IdentityFile, ClientPEM} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing identity: %w", err)
		}
	}
	return nil
}

// CertificateValidity returns NotBefore and NotAfter of the current client
// certificate.
func (c *Client) CertificateValidity() (notBefore, notAfter time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cert.Leaf == nil {
		return
	}
	return c.cert.Leaf.NotBefore, c.cert.Leaf.NotAfter
}
