package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/rulepack"
)

// activePack is a verified pack extracted on disk.
type activePack struct {
	Ref   api.RulePackRef  `json:"ref"`
	Dir   string           `json:"dir"` // holds the pack's files, by their pack path
	Files []rulepack.Entry `json:"files"`
}

const activePacksFile = "active.json"

func (a *Agent) packsDir() string { return filepath.Join(a.cfg.DataDir, "rulepacks") }

func loadActivePacks(dir string) (map[string]activePack, error) {
	out := map[string]activePack{}
	b, err := os.ReadFile(filepath.Join(dir, activePacksFile))
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("loading active rule packs: %w", err)
	}
	var list []activePack
	if err := json.Unmarshal(b, &list); err != nil {
		return out, fmt.Errorf("decoding %s: %w", filepath.Join(dir, activePacksFile), err)
	}
	for _, p := range list {
		if _, err := os.Stat(p.Dir); err == nil {
			out[p.Ref.Name] = p
		}
	}
	return out, nil
}

func saveActivePacks(dir string, m map[string]activePack) error {
	list := make([]activePack, 0, len(m))
	for _, p := range m {
		list = append(list, p)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding active rule packs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving active rule packs: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, activePacksFile), b, 0o600)
}

// installPack verifies an archive against the trusted keys and the ref the
// policy named, and extracts it under dir/<name>/<version>. Nothing is
// written unless the whole pack verifies.
func installPack(dir string, ref api.RulePackRef, archive []byte, trusted []ed25519.PublicKey) (activePack, error) {
	if ref.SHA256 != "" {
		sum := sha256.Sum256(archive)
		if !strings.EqualFold(hex.EncodeToString(sum[:]), ref.SHA256) {
			return activePack{}, fmt.Errorf("rule pack %s/%s: archive sha256 differs from the policy's", ref.Name, ref.Version)
		}
	}
	p, err := rulepack.Open(bytes.NewReader(archive), trusted)
	if err != nil {
		return activePack{}, fmt.Errorf("rule pack %s/%s: %w", ref.Name, ref.Version, err)
	}
	if p.Manifest.Name != ref.Name || p.Manifest.Version != ref.Version {
		return activePack{}, fmt.Errorf("rule pack %s/%s: manifest says %s/%s", ref.Name, ref.Version, p.Manifest.Name, p.Manifest.Version)
	}
	if strings.ContainsAny(ref.Name+ref.Version, "/\\") || ref.Name == ".." || ref.Version == ".." {
		return activePack{}, fmt.Errorf("rule pack %q/%q: bad name", ref.Name, ref.Version)
	}
	final := filepath.Join(dir, ref.Name, ref.Version)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return activePack{}, fmt.Errorf("installing rule pack: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), "."+ref.Version+".tmp*")
	if err != nil {
		return activePack{}, fmt.Errorf("installing rule pack: %w", err)
	}
	defer os.RemoveAll(tmp)
	ap := activePack{Ref: ref, Dir: final}
	for _, f := range p.Files {
		dst := filepath.Join(tmp, "files", filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return activePack{}, fmt.Errorf("installing rule pack: %w", err)
		}
		if err := os.WriteFile(dst, f.Data, 0o600); err != nil {
			return activePack{}, fmt.Errorf("installing rule pack: %w", err)
		}
		ap.Files = append(ap.Files, f.Entry)
	}
	if err := os.WriteFile(filepath.Join(tmp, "pack.tar.gz"), archive, 0o600); err != nil {
		return activePack{}, fmt.Errorf("installing rule pack: %w", err)
	}
	if err := os.RemoveAll(final); err != nil {
		return activePack{}, fmt.Errorf("installing rule pack: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return activePack{}, fmt.Errorf("installing rule pack: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return activePack{}, err
	}
	return ap, nil
}

// ruleFiles lists the on-disk files of the named packs meant for module.
func ruleFiles(active map[string]activePack, packs []string, module string) []string {
	var out []string
	for _, name := range packs {
		p, ok := active[name]
		if !ok {
			continue
		}
		for _, e := range p.Files {
			if e.Module == module {
				out = append(out, filepath.Join(p.Dir, "files", filepath.FromSlash(e.Path)))
			}
		}
	}
	return out
}

// removeStalePacks deletes extracted versions no longer active.
func removeStalePacks(dir string, active map[string]activePack) {
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		vers, _ := os.ReadDir(filepath.Join(dir, n.Name()))
		for _, v := range vers {
			if p, ok := active[n.Name()]; ok && p.Ref.Version == v.Name() {
				continue
			}
			os.RemoveAll(filepath.Join(dir, n.Name(), v.Name()))
		}
	}
}
