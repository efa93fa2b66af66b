package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/rulepack"
)

// maxPackUpload bounds an uploaded or fetched archive.
const maxPackUpload = 256 << 20

// handleImportRulePack takes the signed archive as the body
// (application/gzip or octet-stream), or {"url": "…"} as JSON to fetch it.
// A pack that does not verify against the manager's trusted keys is refused
// and changes nothing: the versions already stored keep being served.
func (m *Manager) handleImportRulePack(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ctx := r.Context()
	var archive []byte
	source := "upload"
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var req api.RulePackImportURL
		if err := decode(w, r, maxPublicBody, &req); err != nil {
			return err
		}
		if m.cfg.DisableRulePackURLs {
			return errf(http.StatusForbidden, "url", "field url: imports from URLs are disabled on this manager")
		}
		if !strings.HasPrefix(req.URL, "https://") && !strings.HasPrefix(req.URL, "http://") {
			return errf(http.StatusBadRequest, "url", "field url: want an http or https URL")
		}
		b, err := fetchPack(ctx, req.URL)
		if err != nil {
			return errf(http.StatusBadGateway, "url", "fetching %s: %v", req.URL, err)
		}
		archive, source = b, req.URL
	} else {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPackUpload))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return errf(http.StatusRequestEntityTooLarge, "", "rule pack larger than %d bytes", maxPackUpload)
			}
			return errf(http.StatusBadRequest, "", "reading upload: %v", err)
		}
		archive = b
	}
	p, err := m.importPack(ctx, rc, archive, source)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func fetchPack(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPackUpload+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPackUpload {
		return nil, fmt.Errorf("larger than %d bytes", maxPackUpload)
	}
	return b, nil
}

func (m *Manager) importPack(ctx context.Context, rc *reqCtx, archive []byte, source string) (api.RulePack, error) {
	pack, err := rulepack.Open(bytes.NewReader(archive), m.trusted)
	if err != nil {
		m.audit(ctx, rc, "", "rulepack.refused", "rulepack", "", map[string]string{"source": source, "error": err.Error()})
		return api.RulePack{}, errf(http.StatusBadRequest, "", "rule pack refused: %v", err)
	}
	sum := sha256.Sum256(archive)
	p := api.RulePack{Name: pack.Manifest.Name, Version: pack.Manifest.Version, SHA256: hex.EncodeToString(sum[:]),
		Description: pack.Manifest.Description, Files: len(pack.Files)}
	p, err = m.store.PutRulePack(ctx, rc.tenant, p, archive)
	if err != nil {
		return p, err
	}
	m.audit(ctx, rc, "", "rulepack.import", "rulepack", p.Name+"/"+p.Version, map[string]any{"source": source, "sha256": p.SHA256, "files": p.Files})
	if err := m.distributeDue(ctx, time.Now()); err != nil {
		return p, err
	}
	return m.store.RulePack(ctx, rc.tenant, p.Name, p.Version)
}

func (m *Manager) handleListRulePacks(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ps, err := m.store.RulePacks(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.RulePack]{Items: ps})
	return nil
}

func (m *Manager) handleGetRulePack(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	b, err := m.store.RulePackArchive(r.Context(), rc.tenant, r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(b)
	return nil
}

var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

func (m *Manager) handleGetSchedule(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	s, err := m.store.Schedule(r.Context(), rc.tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RulePackSchedule{Schedule: s})
	return nil
}

func (m *Manager) handlePutSchedule(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var req api.RulePackSchedule
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if req.Schedule != "immediate" && !hhmm.MatchString(req.Schedule) {
		return errf(http.StatusBadRequest, "schedule", "field schedule: \"immediate\" or a daily UTC time \"HH:MM\", got %q", req.Schedule)
	}
	name := r.PathValue("name")
	if err := m.store.SetSchedule(r.Context(), rc.tenant, name, req.Schedule); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "rulepack.schedule", "rulepack", name, req)
	if err := m.distributeDue(r.Context(), time.Now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

func (m *Manager) handleRulePackKeys(w http.ResponseWriter, r *http.Request, _ *reqCtx) error {
	keys := make([]string, len(m.trusted))
	for i, k := range m.trusted {
		keys[i] = rulepack.EncodePublicKey(k)
	}
	writeJSON(w, http.StatusOK, map[string][]string{"keys": keys})
	return nil
}

// due tells whether a version imported at imported is to be distributed at
// now under schedule: at once for "immediate", else at the first daily
// HH:MM (UTC) after the import.
func due(schedule string, imported, now time.Time) bool {
	if schedule == "" || schedule == "immediate" {
		return true
	}
	var h, mi int
	if _, err := fmt.Sscanf(schedule, "%d:%d", &h, &mi); err != nil {
		return false
	}
	imported = imported.UTC()
	next := time.Date(imported.Year(), imported.Month(), imported.Day(), h, mi, 0, 0, time.UTC)
	if !next.After(imported) {
		next = next.AddDate(0, 0, 1)
	}
	return !now.Before(next)
}

// distributeDue promotes every pending pack version whose time has come,
// which changes the effective policy version of the computers using it.
func (m *Manager) distributeDue(ctx context.Context, now time.Time) error {
	pending, err := m.store.PendingPacks(ctx)
	if err != nil {
		return fmt.Errorf("listing pending rule packs: %w", err)
	}
	for _, p := range pending {
		sc, err := m.store.Schedule(ctx, p.TenantID, p.Name)
		if err != nil {
			return err
		}
		if !due(sc, p.Imported, now) {
			continue
		}
		if err := m.store.Distribute(ctx, p.TenantID, p.Name, p.Version, now); err != nil {
			return err
		}
		_ = m.store.Audit(ctx, api.AuditEntry{TenantID: p.TenantID, Actor: "system", Action: "rulepack.distribute", ObjectType: "rulepack", ObjectID: p.Name + "/" + p.Version,
			Detail: []byte(fmt.Sprintf(`{"schedule":%q}`, sc))})
		m.changed(p.TenantID)
	}
	return nil
}
