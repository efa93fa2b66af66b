// Package testmanager is a small, faithful implementation of the agent
// endpoints of package api, served over real TLS with a CA made on the fly,
// for the agent's own tests: enrolment with a token and CSR, mTLS on every
// other path, heartbeats with long poll and clone detection, policy with
// ETag, rule-pack downloads, idempotent event ingest, command acks and
// certificate renewal. The real manager lives in manager/; this one exists
// so the agent can be tested while that is built and without importing it.
package testmanager

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/rulepack"
)

// Computer is one enrolled agent as the test manager sees it.
type Computer struct {
	ID          string
	Host        api.HostInfo
	Serials     map[string]bool // accepted certificate serials
	Deactivated bool
	LastBeat    api.Heartbeat
	Beats       int
	Commands    []api.Command
	Acks        map[string]api.CommandAck
}

// Server is the test manager.
type Server struct {
	*httptest.Server
	CAPEM      []byte
	CACert     *x509.Certificate
	caKey      *ecdsa.PrivateKey
	PackKey    ed25519.PrivateKey
	PackPub    ed25519.PublicKey
	CertExpiry time.Duration

	mu        sync.Mutex
	tokens    map[string]int // token → uses left
	computers map[string]*Computer
	policy    api.EffectivePolicy
	packs     map[string][]byte // "name/version" → archive
	events    map[string]event.Event
	order     []string
	renew     map[string]bool
	changed   chan struct{} // closed and replaced on policy/command change
	nextID    int
	// FailEvents makes the next n event uploads answer 503.
	FailEvents int
	// Uploads counts event upload requests (including failed ones).
	Uploads int
}

// New starts a test manager on a loopback port.
func New() (*Server, error) {
	s := &Server{
		tokens: map[string]int{}, computers: map[string]*Computer{}, packs: map[string][]byte{},
		events: map[string]event.Event{}, renew: map[string]bool{}, changed: make(chan struct{}),
		CertExpiry: 24 * time.Hour,
	}
	var err error
	s.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mamori test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.caKey.PublicKey, s.caKey)
	if err != nil {
		return nil, err
	}
	s.CACert, _ = x509.ParseCertificate(der)
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "manager"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, s.CACert, &srvKey.PublicKey, s.caKey)
	if err != nil {
		return nil, err
	}
	s.PackPub, s.PackKey, _ = rulepack.GenerateKey()
	pool := x509.NewCertPool()
	pool.AddCert(s.CACert)
	s.policy = api.EffectivePolicy{Version: "v0", PolicyID: "default", HeartbeatSeconds: 60, Modules: map[string]api.ModulePolicy{}}
	s.Server = httptest.NewUnstartedServer(s.routes())
	s.Server.TLS = &tls.Config{
		// The CA goes in the chain so that agents enrolling with a pin can
		// check it.
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER, der}, PrivateKey: srvKey}},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}
	s.Server.StartTLS()
	return s, nil
}

// SetFailEvents makes the next n event uploads answer 503.
func (s *Server) SetFailEvents(n int) {
	s.mu.Lock()
	s.FailEvents = n
	s.mu.Unlock()
}

// SetCertExpiry sets the lifetime of certificates issued from now on.
func (s *Server) SetCertExpiry(d time.Duration) {
	s.mu.Lock()
	s.CertExpiry = d
	s.mu.Unlock()
}

func (s *Server) certExpiry() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.CertExpiry
}

// AddToken creates an enrolment token good for uses enrolments.
func (s *Server) AddToken(tok string, uses int) {
	s.mu.Lock()
	s.tokens[tok] = uses
	s.mu.Unlock()
}

// SetPolicy replaces the effective policy and wakes long-polling agents.
func (s *Server) SetPolicy(p api.EffectivePolicy) {
	s.mu.Lock()
	s.policy = p
	s.wakeLocked()
	s.mu.Unlock()
}

// AddPack stores a pack archive for download.
func (s *Server) AddPack(name, version string, archive []byte) {
	s.mu.Lock()
	s.packs[name+"/"+version] = archive
	s.mu.Unlock()
}

// Queue adds a command for a computer and wakes it.
func (s *Server) Queue(computerID string, cmd api.Command) {
	s.mu.Lock()
	if c := s.computers[computerID]; c != nil {
		c.Commands = append(c.Commands, cmd)
	}
	s.wakeLocked()
	s.mu.Unlock()
}

// RequestRenewal makes the next heartbeat of a computer ask for renewal.
func (s *Server) RequestRenewal(computerID string) {
	s.mu.Lock()
	s.renew[computerID] = true
	s.wakeLocked()
	s.mu.Unlock()
}

// Deactivate makes a computer's certificates stop working.
func (s *Server) Deactivate(computerID string) {
	s.mu.Lock()
	if c := s.computers[computerID]; c != nil {
		c.Deactivated = true
	}
	s.mu.Unlock()
}

// Computer returns a copy of a computer's record.
func (s *Server) Computer(id string) (Computer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.computers[id]
	if !ok {
		return Computer{}, false
	}
	cp := *c
	cp.Serials = map[string]bool{}
	for k, v := range c.Serials {
		cp.Serials[k] = v
	}
	cp.Commands = append([]api.Command(nil), c.Commands...)
	cp.Acks = map[string]api.CommandAck{}
	for k, v := range c.Acks {
		cp.Acks[k] = v
	}
	return cp, true
}

// Computers returns the IDs of all enrolled computers.
func (s *Server) Computers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.computers {
		ids = append(ids, id)
	}
	return ids
}

// Events returns the stored events in ingest order (each ID once).
func (s *Server) Events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]event.Event, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.events[id])
	}
	return out
}

func (s *Server) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathEnroll, s.enroll)
	mux.HandleFunc("POST "+api.PathRenew, s.auth(s.renewCert))
	mux.HandleFunc("POST "+api.PathHeartbeat, s.auth(s.heartbeat))
	mux.HandleFunc("GET "+api.PathAgentPolicy, s.auth(s.getPolicy))
	mux.HandleFunc("GET "+api.PathAgentRulePack+"{name}/{version}", s.auth(s.getPack))
	mux.HandleFunc("POST "+api.PathAgentEvents, s.auth(s.ingest))
	mux.HandleFunc("POST "+api.PathAgentCommand+"{id}/ack", s.auth(s.ackCommand))
	return mux
}

func fail(w http.ResponseWriter, status int, field, msg string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Status: status, Message: fmt.Sprintf(msg, args...), Field: field}})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func decodeStrict(r *http.Request, v any) error {
	var body io.Reader = http.MaxBytesReader(nil, r.Body, api.MaxBodyBytes)
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(body)
		if err != nil {
			return err
		}
		body = io.LimitReader(gz, api.MaxBodyBytes)
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := decodeStrict(r, &req); err != nil {
		fail(w, 400, "", "decoding body: %v", err)
		return
	}
	s.mu.Lock()
	left, ok := s.tokens[req.Token]
	if !ok || left <= 0 {
		s.mu.Unlock()
		fail(w, 401, "token", "token unknown, expired or used up")
		return
	}
	s.tokens[req.Token] = left - 1
	s.nextID++
	id := fmt.Sprintf("c%04d", s.nextID)
	s.mu.Unlock()
	certPEM, serial, err := s.sign(req.CSR, id)
	if err != nil {
		fail(w, 400, "csr", "%v", err)
		return
	}
	s.mu.Lock()
	s.computers[id] = &Computer{ID: id, Host: req.Host, Serials: map[string]bool{serial: true}, Acks: map[string]api.CommandAck{}}
	s.mu.Unlock()
	reply(w, api.EnrollResponse{
		ComputerID: id, TenantID: "t1", Certificate: certPEM, CA: string(s.CAPEM),
		RulePackKeys: []string{rulepack.EncodePublicKey(s.PackPub)}, HeartbeatSeconds: 60,
	})
}

func (s *Server) sign(csrPEM, cn string) (string, string, error) {
	blk, _ := pem.Decode([]byte(csrPEM))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return "", "", fmt.Errorf("not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return "", "", err
	}
	if err := csr.CheckSignature(); err != nil {
		return "", "", err
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", "", fmt.Errorf("key type: want ECDSA P-256 or Ed25519")
		}
	case ed25519.PublicKey:
	default:
		return "", "", fmt.Errorf("key type: want ECDSA P-256 or Ed25519")
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-5 * time.Minute), NotAfter: time.Now().Add(s.certExpiry()),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CACert, csr.PublicKey, s.caKey)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), serial.String(), nil
}

type computerKey struct{}

// auth checks the client certificate and finds the computer.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, *Computer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			fail(w, 401, "", "client certificate required")
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		s.mu.Lock()
		c := s.computers[leaf.Subject.CommonName]
		ok := c != nil && !c.Deactivated && c.Serials[leaf.SerialNumber.String()]
		s.mu.Unlock()
		if !ok {
			fail(w, 403, "", "certificate not valid for an active computer")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), computerKey{}, c.ID)), c)
	}
}

func (s *Server) renewCert(w http.ResponseWriter, r *http.Request, c *Computer) {
	var req api.RenewRequest
	if err := decodeStrict(r, &req); err != nil {
		fail(w, 400, "", "decoding body: %v", err)
		return
	}
	certPEM, serial, err := s.sign(req.CSR, c.ID)
	if err != nil {
		fail(w, 400, "csr", "%v", err)
		return
	}
	s.mu.Lock()
	c.Serials[serial] = true
	delete(s.renew, c.ID)
	s.mu.Unlock()
	reply(w, api.RenewResponse{Certificate: certPEM, CA: string(s.CAPEM)})
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, c *Computer) {
	var hb api.Heartbeat
	if err := decodeStrict(r, &hb); err != nil {
		fail(w, 400, "", "decoding body: %v", err)
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			fail(w, 400, "wait", "not a duration: %q", v)
			return
		}
		wait = min(d, 5*time.Minute)
	}
	s.mu.Lock()
	if (c.Host.MachineID != "" && hb.Host.MachineID != c.Host.MachineID) || (c.Host.InstanceID != "" && hb.Host.InstanceID != c.Host.InstanceID) {
		s.mu.Unlock()
		fail(w, 409, "host.machine_id", "certificate of computer %s presented by a different machine: enrol as a new computer", c.ID)
		return
	}
	c.LastBeat, c.Beats = hb, c.Beats+1
	s.mu.Unlock()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		resp := api.HeartbeatResponse{
			ServerTime: time.Now().UTC(), PolicyVersion: s.policy.Version, HeartbeatSeconds: s.policy.HeartbeatSeconds,
			Commands: append([]api.Command(nil), c.Commands...), RenewCertificate: s.renew[c.ID],
			ClockSkewSeconds: hb.AgentTime.Sub(time.Now()).Seconds(),
		}
		news := len(resp.Commands) > 0 || resp.RenewCertificate || resp.PolicyVersion != hb.PolicyVersion
		ch := s.changed
		s.mu.Unlock()
		if news || wait == 0 {
			reply(w, resp)
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			wait = 0
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, c *Computer) {
	s.mu.Lock()
	p := s.policy
	s.mu.Unlock()
	etag := `"` + p.Version + `"`
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	reply(w, p)
}

func (s *Server) getPack(w http.ResponseWriter, r *http.Request, c *Computer) {
	s.mu.Lock()
	b, ok := s.packs[r.PathValue("name")+"/"+r.PathValue("version")]
	s.mu.Unlock()
	if !ok {
		fail(w, 404, "", "no rule pack %s/%s", r.PathValue("name"), r.PathValue("version"))
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(b)
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request, c *Computer) {
	s.mu.Lock()
	s.Uploads++
	if s.FailEvents > 0 {
		s.FailEvents--
		s.mu.Unlock()
		fail(w, 503, "", "ingest unavailable (injected)")
		return
	}
	s.mu.Unlock()
	var b api.EventBatch
	if err := decodeStrict(r, &b); err != nil {
		fail(w, 400, "", "decoding body: %v", err)
		return
	}
	if len(b.Events) > api.MaxBatchEvents {
		fail(w, 413, "events", "more than %d events", api.MaxBatchEvents)
		return
	}
	var res api.IngestResult
	s.mu.Lock()
	for i, e := range b.Events {
		if err := e.Validate(); err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, fmt.Sprintf("events[%d]: %v", i, err))
			continue
		}
		if _, dup := s.events[e.ID]; dup {
			res.Duplicates++
			continue
		}
		s.events[e.ID] = e
		s.order = append(s.order, e.ID)
		res.Accepted++
	}
	s.mu.Unlock()
	reply(w, res)
}

func (s *Server) ackCommand(w http.ResponseWriter, r *http.Request, c *Computer) {
	var ack api.CommandAck
	if err := decodeStrict(r, &ack); err != nil {
		fail(w, 400, "", "decoding body: %v", err)
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, cmd := range c.Commands {
		if cmd.ID == id {
			c.Commands = append(c.Commands[:i], c.Commands[i+1:]...)
			c.Acks[id] = ack
			reply(w, struct{}{})
			return
		}
	}
	if _, done := c.Acks[id]; done {
		reply(w, struct{}{})
		return
	}
	fail(w, 404, "id", "no command %s", strings.TrimSpace(id))
}
