package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// testCert makes a self-signed server certificate for 127.0.0.1 and
// localhost, returning the server config and the PEM to trust.
func testCert(t testing.TB) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mamori test collector"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func testAlert() Alert {
	uid := 0
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	return Alert{
		ID: "al-1", Tenant: "t-acme",
		Rule:     RuleRef{ID: "ssh-brute", Name: "SSH brute force"},
		Computer: ComputerRef{ID: "c-42", Hostname: "web-1", Group: "web", Tags: []string{"prod"}},
		Count:    3,
		Time:     t0,
		Events: []event.Event{
			{
				ID: "0193a", Time: t0, Kind: event.KindLogAlert, Severity: event.SeverityHigh,
				Module: "loginspect", Message: "SSH brute force from 10.3.98.76 — 5 failures",
				Rule: &event.Rule{ID: "mamori-ssh-bruteforce", Name: "SSH brute | force", Author: "mamori"},
				Src:  &event.Endpoint{IP: "10.3.98.76", Port: 4415}, User: &event.User{Name: "trend", UID: &uid},
				Evidence: []string{"Failed password for trend from 10.3.98.76 port 4415 ssh2"},
			},
			{
				ID: "0193b", Time: t0.Add(time.Second), Kind: event.KindMalwareDetection, Severity: event.SeverityCritical,
				Module: "antimalware", Host: "web-1b", Message: "Eicar-Test-Signature found",
				File: &event.File{Path: "/tmp/eicar=1.com", Hashes: map[string]string{"sha256": "275a021b"}},
			},
		},
	}
}
