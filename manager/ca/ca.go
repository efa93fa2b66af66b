// Package ca is the manager's built-in certificate authority: an ECDSA
// P-256 root kept in the data directory, the manager's TLS server
// certificate, and the short-lived client certificates agents get at
// enrolment and renewal.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA signs certificates.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	pool    *x509.CertPool
}

// ErrCSR marks a refused certificate request (wrong key type, bad
// signature, unparsable): the agent's fault, not the manager's.
var ErrCSR = errors.New("certificate request refused")

// LoadOrCreate reads ca.crt and ca.key from dir, or creates them (the key
// 0600) when neither exists.
func LoadOrCreate(dir string) (*CA, error) {
	crtFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	crtPEM, err1 := os.ReadFile(crtFile)
	keyPEM, err2 := os.ReadFile(keyFile)
	if os.IsNotExist(err1) && os.IsNotExist(err2) {
		return create(dir, crtFile, keyFile)
	}
	if err1 != nil {
		return nil, fmt.Errorf("loading CA: %w", err1)
	}
	if err2 != nil {
		return nil, fmt.Errorf("loading CA: %w", err2)
	}
	return parse(crtPEM, keyPEM)
}

func parse(crtPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(crtPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("loading CA: ca.crt or ca.key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("loading CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("loading CA key: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, certPEM: crtPEM, key: key, pool: pool}, nil
}

func create(dir, crtFile, keyFile string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mamori manager CA", Organization: []string{"mamori"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("creating CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	crtPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("writing CA key: %w", err)
	}
	if err := os.WriteFile(crtFile, crtPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing CA certificate: %w", err)
	}
	return parse(crtPEM, keyPEM)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// PEM is the CA certificate, the agents' trust anchor.
func (c *CA) PEM() []byte { return c.certPEM }

// Pool holds the CA certificate, for verifying client certificates.
func (c *CA) Pool() *x509.CertPool { return c.pool }

// Certificate is the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// ServerCert issues the manager's TLS certificate for hosts (DNS names or
// IPs), valid one year; the manager makes a fresh one at every start.
func (c *CA) ServerCert(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "mamori manager"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing server certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// Issued is a signed client certificate.
type Issued struct {
	PEM         []byte
	Cert        *x509.Certificate
	Serial      string
	Fingerprint string
}

// ParseCSR decodes and checks a PEM certificate request: its signature must
// verify and its key must be ECDSA P-256 or Ed25519.
func ParseCSR(csrPEM string) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: field csr: not a PEM CERTIFICATE REQUEST", ErrCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: field csr: %v", ErrCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: field csr: signature does not verify: %v", ErrCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: field csr: ECDSA key on %s, want P-256", ErrCSR, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: field csr: %T key, want ECDSA P-256 or Ed25519", ErrCSR, csr.PublicKey)
	}
	return csr, nil
}

// SignClient issues a client certificate named cn (the computer ID) for the
// CSR's key.
func (c *CA) SignClient(csr *x509.CertificateRequest, cn string, validity time.Duration) (Issued, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mamori agent"}},
		NotBefore:    time.Now().Add(-5 * time.Minute), // tolerate agents whose clock runs a little behind
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return Issued{}, fmt.Errorf("issuing client certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, err
	}
	return Issued{PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Cert: cert, Serial: Serial(cert), Fingerprint: Fingerprint(cert)}, nil
}

// Serial is how certificates are looked up: the serial number in hex.
func Serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// Fingerprint is the SHA-256 of the DER certificate, hex.
func Fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}

var _ crypto.Signer = (*ecdsa.PrivateKey)(nil)
