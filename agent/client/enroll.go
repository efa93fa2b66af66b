package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/rulepack"
)

// EnrollOptions say where to enrol and how to trust the manager. Exactly
// one of CAPEM and CAPin is required: the token must never be sent to a
// server the agent has not authenticated (no trust on first use).
type EnrollOptions struct {
	ManagerURL string
	Token      string
	CAPEM      []byte // the manager's CA certificate, PEM
	// CAPin is "sha256:<hex>" of the CA certificate's SubjectPublicKeyInfo
	// (the kubeadm discovery-hash form). The manager must send its CA
	// certificate in the TLS chain for a pin to be checkable.
	CAPin   string
	DataDir string
	Host    api.HostInfo
	// KeepToken stores the token (0600) so the agent can re-enrol by itself
	// when the manager detects it as a clone.
	KeepToken bool
	Timeout   time.Duration // per request; 0 = 30 s
}

// SPKIPin returns the pin string of a certificate: "sha256:" + hex of the
// SHA-256 of its SubjectPublicKeyInfo.
func SPKIPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Enroll generates a key and CSR, enrols with the token and stores the
// identity, certificate, CA and rule-pack keys in the data directory.
func Enroll(ctx context.Context, o EnrollOptions) (*Identity, error) {
	u, err := url.Parse(o.ManagerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("enrolling: manager URL %q: want https://host[:port]", o.ManagerURL)
	}
	if o.Token == "" {
		return nil, fmt.Errorf("enrolling: token is empty")
	}
	tlsConf, err := enrollTLS(o, u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	key, csr, err := newKeyAndCSR(o.Host.Hostname)
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	body, _ := json.Marshal(api.EnrollRequest{Token: o.Token, CSR: string(csr), Host: o.Host})
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.ManagerURL, "/")+api.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	defer resp.Body.Close()
	var er api.EnrollResponse
	if err := decodeResponse(resp, &er); err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	if er.ComputerID == "" {
		return nil, fmt.Errorf("enrolling: response field computer_id empty")
	}
	certDER, err := checkIssued(er.Certificate, key)
	if err != nil {
		return nil, fmt.Errorf("enrolling: field certificate: %w", err)
	}
	caPEM := []byte(er.CA)
	if len(bytes.TrimSpace(caPEM)) == 0 {
		caPEM = o.CAPEM
	}
	if err := checkCA(caPEM, resp.TLS, u.Hostname()); err != nil {
		return nil, fmt.Errorf("enrolling: field ca: %w", err)
	}
	for i, k := range er.RulePackKeys {
		if _, err := rulepack.ParsePublicKey(k); err != nil {
			return nil, fmt.Errorf("enrolling: field rulepack_keys[%d]: %w", i, err)
		}
	}
	id := Identity{
		ManagerURL:       strings.TrimRight(o.ManagerURL, "/"),
		ComputerID:       er.ComputerID,
		TenantID:         er.TenantID,
		RulePackKeys:     er.RulePackKeys,
		HeartbeatSeconds: er.HeartbeatSeconds,
		EnrolledAt:       time.Now().UTC(),
	}
	if err := writeCA(o.DataDir, caPEM); err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	if err := writePEMPair(o.DataDir, certDER, key); err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	if o.KeepToken {
		if err := writeSecret(filepath.Join(o.DataDir, TokenFile), []byte(o.Token)); err != nil {
			return nil, fmt.Errorf("enrolling: %w", err)
		}
	}
	// identity.json last: its presence means "enrolled".
	if err := saveIdentity(o.DataDir, id); err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	return &id, nil
}

func enrollTLS(o EnrollOptions, serverName string) (*tls.Config, error) {
	switch {
	case len(o.CAPEM) > 0 && o.CAPin != "":
		return nil, errors.New("give either a CA certificate or a CA pin, not both")
	case len(o.CAPEM) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("CA certificate: no PEM certificate found")
		}
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
	case o.CAPin != "":
		pin := strings.ToLower(strings.TrimSpace(o.CAPin))
		if !strings.HasPrefix(pin, "sha256:") || len(pin) != len("sha256:")+64 {
			return nil, fmt.Errorf("CA pin %q: want sha256:<64 hex digits>", o.CAPin)
		}
		return &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Chain verification is done below against the pinned CA;
			// skipping the default check is what lets a pin replace a
			// CA file, not a way around verification.
			InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
			VerifyConnection: func(cs tls.ConnectionState) error {
				return verifyPinned(cs, pin, serverName)
			},
		}, nil
	}
	return nil, errors.New("no way to authenticate the manager: give --ca-cert or --ca-pin (trust on first use is not allowed)")
}

func verifyPinned(cs tls.ConnectionState, pin, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("manager sent no certificate")
	}
	for _, c := range cs.PeerCertificates {
		if SPKIPin(c) != pin {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(c)
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName})
		if err != nil {
			return fmt.Errorf("manager certificate does not verify against the pinned CA: %w", err)
		}
		return nil
	}
	return fmt.Errorf("no certificate in the manager's TLS chain matches CA pin %s (the manager must send its CA certificate in the chain; otherwise use --ca-cert)", pin)
}

// checkCA makes sure the CA the manager returned is one that authenticates
// the connection we just made: an enrolment answer cannot swap in a
// different trust anchor.
func checkCA(caPEM []byte, cs *tls.ConnectionState, serverName string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no PEM certificate")
	}
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errors.New("no TLS connection state to check it against")
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: serverName}); err != nil {
		return fmt.Errorf("does not verify the manager's own certificate: %w", err)
	}
	return nil
}

func newKeyAndCSR(cn string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	if cn == "" {
		cn = "mamori-agent"
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CSR: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// checkIssued parses the issued certificate and checks it is for our key.
func checkIssued(certPEM string, key *ecdsa.PrivateKey) ([]byte, error) {
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("certificate is not for the key we sent")
	}
	return blk.Bytes, nil
}

func writeCA(dir string, caPEM []byte) error {
	return writeSecret(filepath.Join(dir, CAFile), caPEM)
}
