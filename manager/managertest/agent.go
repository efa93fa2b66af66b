// Package managertest drives a manager the way an agent does — enrol with a
// CSR, heartbeat and upload over mTLS — for the manager's tests, the
// whole-system tests and the load benchmark. It speaks only the api
// contract, so what passes here is what a real agent gets.
package managertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// Agent is an enrolled fake agent.
type Agent struct {
	URL        string
	Host       api.HostInfo
	ComputerID string
	TenantID   string
	Enroll     api.EnrollResponse
	Key        *ecdsa.PrivateKey
	Client     *http.Client
	pool       *x509.CertPool
}

// CSR makes a PEM certificate request for key.
func CSR(key any, cn string) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// Status is a non-2xx answer.
type Status struct {
	Code int
	Body api.ErrorBody
}

func (s *Status) Error() string {
	return fmt.Sprintf("status %d: %s (field %q)", s.Code, s.Body.Error.Message, s.Body.Error.Field)
}

// Do sends v as JSON (nil: no body) and decodes a 2xx answer into out.
func Do(ctx context.Context, c *http.Client, method, url string, header http.Header, v, out any) error {
	var body io.Reader
	if v != nil {
		if b, ok := v.([]byte); ok {
			body = bytes.NewReader(b)
		} else {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			body = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if v != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		st := &Status{Code: resp.StatusCode}
		_ = json.Unmarshal(b, &st.Body)
		return st
	}
	if out != nil && len(b) > 0 {
		if raw, ok := out.(*[]byte); ok {
			*raw = b
			return nil
		}
		return json.Unmarshal(b, out)
	}
	return nil
}

// TLSClient trusts caPEM and presents cert (when set).
func TLSClient(caPEM []byte, cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 4, ForceAttemptHTTP2: true}}
}

// EnrollAgent enrols a new fake agent with token.
func EnrollAgent(ctx context.Context, url string, caPEM []byte, token string, host api.HostInfo) (*Agent, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := CSR(key, "")
	if err != nil {
		return nil, err
	}
	var resp api.EnrollResponse
	if err := Do(ctx, TLSClient(caPEM, nil), "POST", url+api.PathEnroll, nil, api.EnrollRequest{Token: token, CSR: csr, Host: host}, &resp); err != nil {
		return nil, err
	}
	a := &Agent{URL: url, Host: host, ComputerID: resp.ComputerID, TenantID: resp.TenantID, Enroll: resp, Key: key}
	if err := a.UseCertificate([]byte(resp.Certificate)); err != nil {
		return nil, err
	}
	return a, nil
}

// UseCertificate switches the client to a (renewed) certificate.
func (a *Agent) UseCertificate(certPEM []byte) error {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return fmt.Errorf("certificate is not PEM")
	}
	cert := tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: a.Key}
	a.Client = TLSClient([]byte(a.Enroll.CA), &cert)
	return nil
}

// Heartbeat sends a heartbeat; wait > 0 long-polls.
func (a *Agent) Heartbeat(ctx context.Context, hb api.Heartbeat, wait time.Duration) (api.HeartbeatResponse, error) {
	if hb.Host.MachineID == "" {
		hb.Host = a.Host
	}
	if hb.AgentTime.IsZero() {
		hb.AgentTime = time.Now()
	}
	url := a.URL + api.PathHeartbeat
	if wait > 0 {
		url += "?wait=" + wait.String()
	}
	var resp api.HeartbeatResponse
	err := Do(ctx, a.Client, "POST", url, nil, hb, &resp)
	return resp, err
}

// Policy fetches the effective policy.
func (a *Agent) Policy(ctx context.Context) (api.EffectivePolicy, error) {
	var ep api.EffectivePolicy
	err := Do(ctx, a.Client, "GET", a.URL+api.PathAgentPolicy, nil, nil, &ep)
	return ep, err
}

// Upload sends a batch of events.
func (a *Agent) Upload(ctx context.Context, evs []event.Event) (api.IngestResult, error) {
	var res api.IngestResult
	err := Do(ctx, a.Client, "POST", a.URL+api.PathAgentEvents, nil, api.EventBatch{Events: evs}, &res)
	return res, err
}

// Events makes n valid events.
func Events(n int, module string, sev event.Severity) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{ID: event.NewID(), Time: time.Now().UTC(), Kind: "test.event", Severity: sev, Module: module,
			Message: fmt.Sprintf("test event %d", i), Rule: &event.Rule{ID: "test-rule"}}
	}
	return out
}
