package rulepack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testPack(t testing.TB) ([]byte, ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build("mamori-default", "2026.11.25", "test", time.Unix(0, 0), []File{
		{Entry: Entry{Module: "loginspect", Path: "sigma/ssh.yml"}, Data: []byte("title: ssh\n")},
		{Entry: Entry{Module: "antimalware", Path: "clamav/eicar.ndb"}, Data: []byte("Eicar:0:*:58354f\n")},
	}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b, pub, priv
}

func TestRoundTrip(t *testing.T) {
	b, pub, _ := testPack(t)
	other, _, _ := GenerateKey()
	p, err := Open(bytes.NewReader(b), []ed25519.PublicKey{other, pub})
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyIndex != 1 || len(p.Files) != 2 || string(p.ForModule("loginspect")[0].Data) != "title: ssh\n" {
		t.Errorf("Open() = %+v", p)
	}
}

// rewrite re-tars a pack, letting edit change entries.
func rewrite(t *testing.T, b []byte, edit func(name string, data []byte) (string, []byte)) []byte {
	gz, _ := gzip.NewReader(bytes.NewReader(b))
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		data, _ := io.ReadAll(tr)
		name, data := edit(h.Name, data)
		if name == "" {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func TestRefusesTampering(t *testing.T) {
	b, pub, _ := testPack(t)
	keys := []ed25519.PublicKey{pub}
	tests := []struct {
		name string
		edit func(string, []byte) (string, []byte)
		want string
	}{
		{"file content changed", func(n string, d []byte) (string, []byte) {
			if n == "files/sigma/ssh.yml" {
				return n, []byte("title: evil\n")
			}
			return n, d
		}, "size or sha256"},
		{"manifest changed", func(n string, d []byte) (string, []byte) {
			if n == "manifest.json" {
				return n, bytes.Replace(d, []byte("2026.11.25"), []byte("2026.11.26"), 1)
			}
			return n, d
		}, "signature"},
		{"extra file", func(n string, d []byte) (string, []byte) {
			if n == "files/sigma/ssh.yml" {
				return "files/sigma/x.yml", d
			}
			return n, d
		}, "missing"},
		{"path escape", func(n string, d []byte) (string, []byte) {
			if n == "files/sigma/ssh.yml" {
				return "files/../../etc/passwd", d
			}
			return n, d
		}, "inside the pack"},
		{"signature removed", func(n string, d []byte) (string, []byte) {
			if n == "manifest.sig" {
				return "", nil
			}
			return n, d
		}, "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(rewrite(t, b, tc.edit)), keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(tampered) = %v, want error containing %q", err, tc.want)
			}
		})
	}
	other, _, _ := GenerateKey()
	if _, err := Open(bytes.NewReader(b), []ed25519.PublicKey{other}); !errors.Is(err, ErrSignature) {
		t.Errorf("Open(untrusted key) = %v, want ErrSignature", err)
	}
}

func TestKeyFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "k", "pack.key")
	k1, err := LoadOrCreateKey(f)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(f)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("LoadOrCreateKey twice = %v, different key", err)
	}
	pk, err := ParsePublicKey(EncodePublicKey(k1.Public().(ed25519.PublicKey)))
	if err != nil || !pk.Equal(k1.Public()) {
		t.Errorf("ParsePublicKey round trip = %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	b, pub, _ := testPack(f)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Open(bytes.NewReader(data), []ed25519.PublicKey{pub})
		if err == nil && p.Manifest.Name == "" {
			t.Errorf("Open accepted a pack with no name")
		}
	})
}
