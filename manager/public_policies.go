package manager

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/policy"
	"github.com/mamori-sec/mamori/manager/store"
)

var moduleName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func validPolicy(req api.PolicyRequest) error {
	if err := validName("name", req.Name); err != nil {
		return err
	}
	if req.HeartbeatSeconds < 0 || (req.HeartbeatSeconds > 0 && req.HeartbeatSeconds < 5) {
		return errf(http.StatusBadRequest, "heartbeat_seconds", "field heartbeat_seconds: 0 (inherit) or at least 5")
	}
	if req.Budget != nil && (req.Budget.CPUPercent < 0 || req.Budget.CPUPercent > 100) {
		return errf(http.StatusBadRequest, "budget.cpu_percent", "field budget.cpu_percent: 0..100")
	}
	if req.Outbox != nil && req.Outbox.Overflow != "" && req.Outbox.Overflow != "drop_oldest" && req.Outbox.Overflow != "drop_newest" {
		return errf(http.StatusBadRequest, "outbox.overflow", "field outbox.overflow: drop_oldest or drop_newest")
	}
	for name := range req.Modules {
		if !moduleName.MatchString(name) {
			return errf(http.StatusBadRequest, "modules."+name, "field modules: %q is not a module name", name)
		}
	}
	return nil
}

func (m *Manager) putPolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx, id string) error {
	var req api.PolicyRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if err := validPolicy(req); err != nil {
		return err
	}
	p := api.Policy{ID: id, ParentID: req.ParentID, Name: req.Name, Description: req.Description, HeartbeatSeconds: req.HeartbeatSeconds,
		Budget: req.Budget, Outbox: req.Outbox, Modules: req.Modules}
	p, err := m.store.PutPolicy(r.Context(), rc.tenant, p)
	switch {
	case id != "" && errors.Is(err, store.ErrNotFound) && req.ParentID == "":
		return err
	case errors.Is(err, store.ErrNotFound):
		return errf(http.StatusBadRequest, "parent_id", "field parent_id: no such policy")
	case errors.Is(err, store.ErrCycle):
		return errf(http.StatusBadRequest, "parent_id", "field parent_id: would make the policy its own ancestor")
	case err != nil:
		return err
	}
	action, status := "policy.update", http.StatusOK
	if id == "" {
		action, status = "policy.create", http.StatusCreated
	}
	m.audit(r.Context(), rc, "", action, "policy", p.ID, req)
	m.changed(rc.tenant)
	writeJSON(w, status, p)
	return nil
}

func (m *Manager) handleCreatePolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.putPolicy(w, r, rc, "")
}

func (m *Manager) handlePutPolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if _, err := m.store.Policy(r.Context(), rc.tenant, r.PathValue("id")); err != nil {
		return err
	}
	return m.putPolicy(w, r, rc, r.PathValue("id"))
}

func (m *Manager) handleListPolicies(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ps, err := m.store.Policies(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.Policy]{Items: ps})
	return nil
}

func (m *Manager) handleGetPolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	p, err := m.store.Policy(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (m *Manager) handleDeletePolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if err := m.store.DeletePolicy(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "policy.delete", "policy", id, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) handlePolicyResolved(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	chain, err := m.store.PolicyChain(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	_, rp, err := m.compute(r.Context(), rc.tenant, chain, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rp)
	return nil
}

// handlePolicyDiff shows what a policy changes relative to its parent.
func (m *Manager) handlePolicyDiff(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	chain, err := m.store.PolicyChain(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	to, _, err := m.compute(r.Context(), rc.tenant, chain, nil)
	if err != nil {
		return err
	}
	from, _, err := m.compute(r.Context(), rc.tenant, chain[:len(chain)-1], nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.PolicyDiff{From: from.Version, To: to.Version, Changes: policy.Diff(from, to)})
	return nil
}
