package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func csrPEM(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestCSRKeyTypes(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := csrPEM(t, p256)
	tampered := []byte(good)
	blk, _ := pem.Decode(tampered)
	blk.Bytes[len(blk.Bytes)-5] ^= 0xff // inside the signature
	for _, tc := range []struct {
		name string
		csr  string
		ok   bool
	}{
		{"ecdsa p256", good, true},
		{"ed25519", csrPEM(t, ed), true},
		{"ecdsa p384", csrPEM(t, p384), false},
		{"rsa", csrPEM(t, rsaKey), false},
		{"bad signature", string(pem.EncodeToMemory(blk)), false},
		{"not pem", "hello", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSR(tc.csr)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseCSR = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrCSR) {
				t.Fatalf("error %v is not ErrCSR", err)
			}
		})
	}
}

func TestIssueAndVerify(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	again, err := LoadOrCreate(dir)
	if err != nil || string(again.PEM()) != string(c.PEM()) {
		t.Fatalf("reload gave another CA: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := ParseCSR(csrPEM(t, key))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.SignClient(csr, "c_123", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if iss.Cert.Subject.CommonName != "c_123" {
		t.Fatalf("CN = %q, want c_123 (the CSR's name is ignored)", iss.Cert.Subject.CommonName)
	}
	if _, err := iss.Cert.Verify(x509.VerifyOptions{Roots: again.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client cert does not verify: %v", err)
	}
	srv, err := c.ServerCert([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("server cert for 127.0.0.1: %v", err)
	}
}

// FuzzParseCSR feeds arbitrary text to the enrolment CSR check: it must
// never panic, and whatever it accepts must carry an allowed key.
func FuzzParseCSR(f *testing.F) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []crypto.Signer{p256, ed} {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	}
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		csr, err := ParseCSR(s)
		if err != nil {
			return
		}
		switch k := csr.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				t.Fatalf("accepted curve %s", k.Curve.Params().Name)
			}
		case ed25519.PublicKey:
		default:
			t.Fatalf("accepted %T", k)
		}
	})
}
