package manager

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
)

func (m *Manager) handleListTenants(w http.ResponseWriter, r *http.Request, _ *reqCtx) error {
	ts, err := m.store.Tenants(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.Tenant]{Items: ts})
	return nil
}

func (m *Manager) handleCreateTenant(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var req api.TenantRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if err := validName("name", req.Name); err != nil {
		return err
	}
	t, err := m.createTenant(r.Context(), req.Name)
	if err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "tenant.create", "tenant", t.ID, req)
	m.audit(r.Context(), rc, t.ID, "tenant.create", "tenant", t.ID, req)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func validName(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return errf(http.StatusBadRequest, field, "field %s: required", field)
	}
	if len(s) > 200 {
		return errf(http.StatusBadRequest, field, "field %s: longer than 200 bytes", field)
	}
	return nil
}

func (m *Manager) handleListKeys(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ks, err := m.store.APIKeys(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.APIKey]{Items: ks})
	return nil
}

func (m *Manager) handleCreateKey(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var req api.APIKeyRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if err := validName("name", req.Name); err != nil {
		return err
	}
	tenant := rc.tenant
	if req.TenantID != "" && req.TenantID != rc.tenant {
		if !rc.key.SystemAdmin {
			return errf(http.StatusForbidden, "tenant_id", "field tenant_id: only a system admin key can create keys in another tenant")
		}
		if _, err := m.store.Tenant(r.Context(), req.TenantID); err != nil {
			return errf(http.StatusBadRequest, "tenant_id", "field tenant_id: no such tenant")
		}
		tenant = req.TenantID
	}
	if req.SystemAdmin && !rc.key.SystemAdmin {
		return errf(http.StatusForbidden, "system_admin", "field system_admin: only a system admin key can create one")
	}
	k, err := m.store.CreateAPIKey(r.Context(), tenant, req.Name, req.SystemAdmin)
	if err != nil {
		return err
	}
	m.audit(r.Context(), rc, tenant, "apikey.create", "apikey", k.ID, map[string]any{"name": k.Name, "system_admin": k.SystemAdmin})
	writeJSON(w, http.StatusCreated, k)
	return nil
}

func (m *Manager) handleRevokeKey(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if err := m.store.RevokeAPIKey(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "apikey.revoke", "apikey", id, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) handleListTokens(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ts, err := m.store.Tokens(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.EnrollmentToken]{Items: ts})
	return nil
}

func (m *Manager) handleCreateToken(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var req api.TokenRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	ttl := 24 * time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return errf(http.StatusBadRequest, "ttl", "field ttl: %q is not a positive duration like \"24h\"", req.TTL)
		}
		ttl = d
	}
	if req.MaxUses < 0 {
		return errf(http.StatusBadRequest, "max_uses", "field max_uses: negative")
	}
	if req.PolicyID != "" {
		if _, err := m.store.Policy(r.Context(), rc.tenant, req.PolicyID); err != nil {
			return errf(http.StatusBadRequest, "policy_id", "field policy_id: no such policy")
		}
	}
	t, err := m.store.CreateToken(r.Context(), rc.tenant, req, ttl)
	if err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "token.create", "token", t.ID, req)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (m *Manager) handleGetToken(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	t, err := m.store.Token(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (m *Manager) handleRevokeToken(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if err := m.store.RevokeToken(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "token.revoke", "token", id, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) handleGetSettings(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	st, err := m.store.Settings(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (m *Manager) handlePatchSettings(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var p api.SettingsPatch
	if err := decode(w, r, maxPublicBody, &p); err != nil {
		return err
	}
	st, err := m.store.Settings(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
		min  int
	}{
		{"event_retention_days", p.EventRetentionDays, &st.EventRetentionDays, 0},
		{"offline_after_missed", p.OfflineAfterMissed, &st.OfflineAfterMissed, 1},
		{"inactive_cleanup_days", p.InactiveCleanupDays, &st.InactiveCleanupDays, 0},
		{"default_heartbeat_seconds", p.DefaultHeartbeatSeconds, &st.DefaultHeartbeatSeconds, 5},
	} {
		if f.v == nil {
			continue
		}
		if *f.v < f.min {
			return errf(http.StatusBadRequest, f.name, "field %s: at least %d", f.name, f.min)
		}
		*f.dst = *f.v
	}
	if err := m.store.PutSettings(r.Context(), rc.tenant, st); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "settings.update", "settings", "", p)
	m.changed(rc.tenant)
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (m *Manager) handleAudit(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := r.URL.Query()
	var before int64
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil {
			return errf(http.StatusBadRequest, "cursor", "invalid cursor")
		}
		before = n
	}
	limit, err := queryInt(q.Get("limit"), "limit", 100)
	if err != nil {
		return err
	}
	tenant := rc.tenant
	if q.Get("system") == "1" {
		// Entries no tenant owns: enrolments refused for unknown tokens.
		if !rc.key.SystemAdmin {
			return errf(http.StatusForbidden, "system", "query system: needs a system admin key")
		}
		tenant = ""
	}
	es, err := m.store.AuditLog(r.Context(), tenant, before, limit)
	if err != nil {
		return err
	}
	page := api.Page[api.AuditEntry]{Items: es}
	if len(es) == limit {
		page.Next = strconv.FormatInt(es[len(es)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func queryInt(s, field string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errf(http.StatusBadRequest, field, "query %s: %q is not a non-negative integer", field, s)
	}
	return n, nil
}
