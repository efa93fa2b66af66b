// Package rulepack is the signed bundle in which rules travel from the
// manager to agents: a gzip'd tar holding manifest.json, manifest.sig (an
// ed25519 signature over the manifest bytes) and the rule files, each listed
// in the manifest with its module, size and SHA-256. A pack is verified whole
// before any of it is used; a pack that fails is refused and the previous one
// stays active.
package rulepack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Limits keep a hostile archive from exhausting memory.
const (
	MaxFiles     = 10000
	MaxFileBytes = 256 << 20
	MaxPackBytes = 1 << 30
)

// ErrSignature is returned when no trusted key verifies the manifest.
var ErrSignature = errors.New("rule pack signature does not verify")

// Manifest describes a pack.
type Manifest struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Created     time.Time `json:"created"`
	Description string    `json:"description,omitempty"`
	Files       []Entry   `json:"files"`
}

// Entry is one file of a pack.
type Entry struct {
	Module string `json:"module"` // "antimalware", "loginspect", …
	Path   string `json:"path"`   // relative, slash-separated, e.g. "sigma/ssh.yml"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// File is an entry with its content.
type File struct {
	Entry
	Data []byte
}

// Pack is a verified pack.
type Pack struct {
	Manifest Manifest
	Files    []File
	// KeyIndex is the index of the trusted key that verified it.
	KeyIndex int
}

// Build signs a pack of files with key and returns the archive bytes.
// Files are stored in path order so the same input gives the same manifest.
func Build(name, version, description string, created time.Time, files []File, key ed25519.PrivateKey) ([]byte, error) {
	if err := validName("name", name); err != nil {
		return nil, err
	}
	if err := validName("version", version); err != nil {
		return nil, err
	}
	m := Manifest{Name: name, Version: version, Created: created.UTC(), Description: description}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	seen := map[string]bool{}
	for i := range sorted {
		f := &sorted[i]
		if err := validPath(f.Path); err != nil {
			return nil, err
		}
		if f.Module == "" {
			return nil, fmt.Errorf("file %s: missing module", f.Path)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("file %s: listed twice", f.Path)
		}
		seen[f.Path] = true
		sum := sha256.Sum256(f.Data)
		f.Size, f.SHA256 = int64(len(f.Data)), hex.EncodeToString(sum[:])
		m.Files = append(m.Files, f.Entry)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	sig := ed25519.Sign(key, mb)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: m.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("manifest.json", mb); err != nil {
		return nil, fmt.Errorf("writing pack: %w", err)
	}
	if err := add("manifest.sig", []byte(hexSig(sig))); err != nil {
		return nil, fmt.Errorf("writing pack: %w", err)
	}
	for _, f := range sorted {
		if err := add("files/"+f.Path, f.Data); err != nil {
			return nil, fmt.Errorf("writing pack: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing pack: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("writing pack: %w", err)
	}
	return buf.Bytes(), nil
}

func hexSig(sig []byte) string { return hex.EncodeToString(sig) + "\n" }

// Open reads and verifies an archive against the trusted keys: the
// signature, then every file's size and hash, and that the archive holds
// exactly the files the manifest lists.
func Open(r io.Reader, trusted []ed25519.PublicKey) (*Pack, error) {
	gz, err := gzip.NewReader(io.LimitReader(r, MaxPackBytes))
	if err != nil {
		return nil, fmt.Errorf("reading pack: %w", err)
	}
	tr := tar.NewReader(gz)
	var manifest, sig []byte
	data := map[string][]byte{}
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading pack: %w", err)
		}
		if n > MaxFiles+2 {
			return nil, fmt.Errorf("reading pack: more than %d files", MaxFiles)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("reading pack: entry %q: not a regular file", h.Name)
		}
		if h.Size > MaxFileBytes {
			return nil, fmt.Errorf("reading pack: entry %q: larger than %d bytes", h.Name, MaxFileBytes)
		}
		total += h.Size
		if total > MaxPackBytes {
			return nil, fmt.Errorf("reading pack: larger than %d bytes unpacked", MaxPackBytes)
		}
		b, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, fmt.Errorf("reading pack: entry %q: %w", h.Name, err)
		}
		switch {
		case h.Name == "manifest.json":
			manifest = b
		case h.Name == "manifest.sig":
			sig = b
		case strings.HasPrefix(h.Name, "files/"):
			p := strings.TrimPrefix(h.Name, "files/")
			if err := validPath(p); err != nil {
				return nil, fmt.Errorf("reading pack: %w", err)
			}
			if _, dup := data[p]; dup {
				return nil, fmt.Errorf("reading pack: entry %q twice", h.Name)
			}
			data[p] = b
		default:
			return nil, fmt.Errorf("reading pack: unexpected entry %q", h.Name)
		}
	}
	if manifest == nil || sig == nil {
		return nil, fmt.Errorf("reading pack: manifest.json or manifest.sig missing")
	}
	rawSig, err := hex.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(rawSig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("reading pack: manifest.sig: not a hex ed25519 signature: %w", ErrSignature)
	}
	keyIndex := -1
	for i, k := range trusted {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, manifest, rawSig) {
			keyIndex = i
			break
		}
	}
	if keyIndex < 0 {
		return nil, ErrSignature
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	p := &Pack{Manifest: m, KeyIndex: keyIndex}
	for _, e := range m.Files {
		b, ok := data[e.Path]
		if !ok {
			return nil, fmt.Errorf("verifying pack: file %s listed in manifest but missing", e.Path)
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
			return nil, fmt.Errorf("verifying pack: file %s: size or sha256 differs from manifest", e.Path)
		}
		delete(data, e.Path)
		p.Files = append(p.Files, File{Entry: e, Data: b})
	}
	for extra := range data {
		return nil, fmt.Errorf("verifying pack: file %s not listed in manifest", extra)
	}
	return p, nil
}

// ForModule returns the files of one module.
func (p *Pack) ForModule(module string) []File {
	var out []File
	for _, f := range p.Files {
		if f.Module == module {
			out = append(out, f)
		}
	}
	return out
}

func validName(field, s string) error {
	if s == "" || len(s) > 128 || strings.ContainsAny(s, "/\\ \t\n\x00") || s == "." || s == ".." {
		return fmt.Errorf("field %s: %q is not a valid pack %s", field, s, field)
	}
	return nil
}

func validPath(p string) error {
	if p == "" || len(p) > 512 || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("file path %q: must be relative, clean and inside the pack", p)
	}
	return nil
}
