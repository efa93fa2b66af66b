package rulepack

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// GenerateKey makes a new signing key.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// EncodePublicKey is the base64 form used in api.EnrollResponse.
func EncodePublicKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// ParsePublicKey reads the base64 form.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("parsing rule pack key: not a base64 ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}

// LoadOrCreateKey reads a PEM private key from file, or creates one (0600)
// when the file does not exist.
func LoadOrCreateKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "MAMORI RULEPACK KEY" || len(blk.Bytes) != ed25519.SeedSize {
			return nil, fmt.Errorf("loading rule pack key %s: not a mamori rule pack key", file)
		}
		return ed25519.NewKeyFromSeed(blk.Bytes), nil
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("loading rule pack key: %w", err)
	}
	_, priv, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("creating rule pack key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "MAMORI RULEPACK KEY", Bytes: priv.Seed()})
	if err := os.WriteFile(file, out, 0o600); err != nil {
		return nil, fmt.Errorf("creating rule pack key: %w", err)
	}
	return priv, nil
}
