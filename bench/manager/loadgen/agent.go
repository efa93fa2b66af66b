package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mamori-sec/mamori/api"
)

// agent is one simulated agent.
type agent struct {
	n          int
	computerID string
	host       api.HostInfo
	client     *http.Client
	policy     string
	hbOK       atomic.Int64 // successful heartbeats in measured phases
	hbFail     atomic.Int64
}

// call sends body (nil: none) and returns the status and the answer.
func call(ctx context.Context, c *http.Client, method, url string, body []byte, hdr map[string]string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

func httpError(code int, b []byte) error {
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Errorf("status %d: %s", code, bytes.TrimSpace(b))
}

// createToken asks the manager for an enrolment token good for every
// simulated agent.
func createToken(ctx context.Context, o options, pool *x509.CertPool) (string, error) {
	c := &http.Client{Timeout: o.reqTimeout, Transport: agentTransport(o, pool, nil)}
	body, _ := json.Marshal(map[string]any{"max_uses": o.agents + 10, "ttl": "24h"})
	code, b, err := call(ctx, c, http.MethodPost, o.url+api.Version+"/tokens", body, map[string]string{"Authorization": "Bearer " + o.apiKey})
	if err != nil {
		return "", fmt.Errorf("creating enrolment token: %w", err)
	}
	if code/100 != 2 {
		return "", fmt.Errorf("creating enrolment token: %w", httpError(code, b))
	}
	var t struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("creating enrolment token: no token in %s", b)
	}
	return t.Token, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// enrollAll enrols o.agents agents, o.enrollConc at a time, over one
// shared transport (enrolment has no client certificate yet).
func enrollAll(ctx context.Context, o options, pool *x509.CertPool, st *stats) ([]*agent, error) {
	tr := agentTransport(o, pool, nil)
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = o.enrollConc, o.enrollConc, o.enrollConc
	shared := &http.Client{Timeout: o.reqTimeout, Transport: tr}
	defer tr.CloseIdleConnections()
	var (
		mu     sync.Mutex
		agents = make([]*agent, 0, o.agents)
		next   atomic.Int64
		wg     sync.WaitGroup
		done   atomic.Int64
	)
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	go func() {
		for range progress.C {
			log.Printf("  enrolled %d", done.Load())
		}
	}()
	for w := 0; w < o.enrollConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > o.agents || ctx.Err() != nil {
					return
				}
				a, err := enroll(ctx, o, pool, shared, i, st)
				if err != nil {
					st.fail("enroll", err)
					continue
				}
				done.Add(1)
				mu.Lock()
				agents = append(agents, a)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return agents, ctx.Err()
}

func enroll(ctx context.Context, o options, pool *x509.CertPool, c *http.Client, n int, st *stats) (*agent, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(crand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("loadgen-%05d", n)}}, key)
	if err != nil {
		return nil, err
	}
	host := api.HostInfo{
		Hostname:     fmt.Sprintf("loadgen-%05d", n),
		MachineID:    randHex(16),
		InstanceID:   "i-" + randHex(8),
		OS:           "Debian GNU/Linux 12",
		Kernel:       "6.1.0-loadgen",
		Arch:         "amd64",
		IPs:          []string{fmt.Sprintf("192.0.2.%d", n%250+1)},
		AgentVersion: "loadgen",
	}
	body, _ := json.Marshal(api.EnrollRequest{
		Token: o.token,
		CSR:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		Host:  host,
	})
	t0 := time.Now()
	code, b, err := call(ctx, c, http.MethodPost, o.url+api.PathEnroll, body, nil)
	if err != nil {
		return nil, err
	}
	if code/100 != 2 {
		return nil, httpError(code, b)
	}
	st.observe("enroll", phaseEnroll, time.Since(t0))
	var er api.EnrollResponse
	if err := json.Unmarshal(b, &er); err != nil {
		return nil, fmt.Errorf("decoding enrolment answer: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair([]byte(er.Certificate), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return nil, fmt.Errorf("loading issued certificate: %w", err)
	}
	if er.CA != "" {
		// Trust what the manager says at enrolment, as the real agent does.
		p := x509.NewCertPool()
		if p.AppendCertsFromPEM([]byte(er.CA)) {
			pool = p
		}
	}
	timeout := o.reqTimeout
	if o.longPoll {
		timeout += 2 * o.interval // a poll is held up to the interval
	}
	return &agent{
		n: n, computerID: er.ComputerID, host: host,
		client: &http.Client{Timeout: timeout, Transport: agentTransport(o, pool, &cert)},
	}, nil
}

var moduleNames = []string{"firewall", "ips", "loginspect", "integrity", "antimalware", "dnsfilter"}

func (a *agent) heartbeat(ctx context.Context, o options, st *stats, wait time.Duration) error {
	mods := make([]api.ModuleState, len(moduleNames))
	for i, m := range moduleNames {
		mods[i] = api.ModuleState{Name: m, State: "running", RuleCount: 100 * (i + 1)}
	}
	body, _ := json.Marshal(api.Heartbeat{
		Host: a.host, AgentTime: time.Now().UTC(), PolicyVersion: a.policy, Modules: mods,
	})
	p := st.current()
	url := o.url + api.PathHeartbeat
	if wait > 0 {
		url += "?wait=" + wait.String()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+o.reqTimeout)
		defer cancel()
	}
	t0 := time.Now()
	code, b, err := call(ctx, a.client, http.MethodPost, url, body, nil)
	if err == nil && code/100 != 2 {
		err = httpError(code, b)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(t0)
	if wait > 0 {
		// A long poll answers at its deadline unless there is news; what
		// the agent waits beyond the deadline is the manager's latency.
		// Early answers (news) say nothing about it.
		deadline := min(wait, o.maxWait)
		if elapsed < deadline-time.Second {
			st.observe("heartbeat-early", p, elapsed)
		} else {
			st.observe("heartbeat", p, max(elapsed-deadline, 0))
		}
	} else {
		st.observe("heartbeat", p, elapsed)
	}
	var hr api.HeartbeatResponse
	if err := json.Unmarshal(b, &hr); err != nil {
		return fmt.Errorf("decoding heartbeat answer: %w", err)
	}
	if o.fetchPolicy && hr.PolicyVersion != "" && hr.PolicyVersion != a.policy {
		return a.fetchPolicy(ctx, o, st, p)
	}
	return nil
}

func (a *agent) fetchPolicy(ctx context.Context, o options, st *stats, p phase) error {
	hdr := map[string]string{}
	if a.policy != "" {
		hdr["If-None-Match"] = a.policy
	}
	t0 := time.Now()
	code, b, err := call(ctx, a.client, http.MethodGet, o.url+api.PathAgentPolicy, nil, hdr)
	if err != nil {
		st.fail("policy", err)
		return nil
	}
	switch {
	case code == http.StatusNotModified:
	case code/100 == 2:
		var ep api.EffectivePolicy
		if err := json.Unmarshal(b, &ep); err != nil {
			st.fail("policy", err)
			return nil
		}
		a.policy = ep.Version
	default:
		st.fail("policy", httpError(code, b))
		return nil
	}
	st.observe("policy", p, time.Since(t0))
	return nil
}

// heartbeatLoop spreads the first heartbeat uniformly over one interval
// (agents of a real fleet do not start in step), then beats with jitter.
func (a *agent) heartbeatLoop(ctx context.Context, o options, st *stats) {
	wait := time.Duration(rand.Int64N(int64(o.interval)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var poll time.Duration
		if o.longPoll {
			poll = max(jittered(o.interval, o.jitter).Round(time.Second), time.Second)
		}
		err := a.heartbeat(ctx, o, st, poll)
		if ctx.Err() != nil {
			return
		}
		measured := st.current() == phaseQuiet || st.current() == phaseIngestWarmup || st.current() == phaseIngest
		if err != nil {
			st.fail("heartbeat", err)
			if measured {
				a.hbFail.Add(1)
			}
		} else if measured {
			a.hbOK.Add(1)
		}
		switch {
		case !o.longPoll:
			wait = jittered(o.interval, o.jitter)
		case err != nil:
			wait = time.Second + time.Duration(rand.Int64N(int64(4*time.Second)))
		default:
			wait = 0 // the real agent polls again at once
		}
	}
}
