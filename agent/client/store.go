package client

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
)

// Files of the agent's identity in its data directory. The client
// certificate and its key share one file so that renewal swaps them with a
// single rename: a crash can never pair a new certificate with an old key.
const (
	IdentityFile = "identity.json"
	ClientPEM    = "client.pem" // CERTIFICATE + EC PRIVATE KEY, 0600
	CAFile       = "ca.pem"
	TokenFile    = "enroll-token" // kept only for clone re-enrolment, 0600
)

// ErrNotEnrolled is returned by Load when the data directory holds no
// identity.
var ErrNotEnrolled = errors.New("agent not enrolled (run mamori agent enroll)")

// Identity is what enrolment gave the agent.
type Identity struct {
	ManagerURL       string    `json:"manager_url"`
	ComputerID       string    `json:"computer_id"`
	TenantID         string    `json:"tenant_id"`
	RulePackKeys     []string  `json:"rulepack_keys"`
	HeartbeatSeconds int       `json:"heartbeat_seconds"`
	EnrolledAt       time.Time `json:"enrolled_at"`
}

func writePEMPair(dir string, certDER []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
	return atomicfile.Write(filepath.Join(dir, ClientPEM), out, 0o600)
}

func loadPair(dir string) (*tls.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, ClientPEM))
	if err != nil {
		return nil, fmt.Errorf("loading client certificate: %w", err)
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate %s: %w", filepath.Join(dir, ClientPEM), err)
	}
	return &c, nil
}

func saveIdentity(dir string, id Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding identity: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, IdentityFile), b, 0o600)
}

// LoadIdentity reads identity.json.
func LoadIdentity(dir string) (Identity, error) {
	var id Identity
	b, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if os.IsNotExist(err) {
		return id, ErrNotEnrolled
	}
	if err != nil {
		return id, fmt.Errorf("loading identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("decoding %s: %w", filepath.Join(dir, IdentityFile), err)
	}
	if id.ComputerID == "" || id.ManagerURL == "" {
		return id, fmt.Errorf("decoding %s: field computer_id or manager_url empty", filepath.Join(dir, IdentityFile))
	}
	return id, nil
}

func loadCAPool(dir string) (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("loading manager CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("loading manager CA %s: no PEM certificate", filepath.Join(dir, CAFile))
	}
	return pool, nil
}

// SavedToken returns the enrolment token kept for clone re-enrolment, or "".
func SavedToken(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return ""
	}
	return string(trimSpace(b))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
