package manager

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/policy"
	"github.com/mamori-sec/mamori/manager/store"
)

// computerState derives a computer's state from its last heartbeat and its
// modules: offline after missing N heartbeats, warning when a module
// failed.
func computerState(c api.Computer, st api.Settings, now time.Time) string {
	if c.Deactivated {
		return api.StateDeactivated
	}
	hbs := st.DefaultHeartbeatSeconds
	if hbs <= 0 {
		hbs = 60
	}
	missed := max(st.OfflineAfterMissed, 1)
	if now.Sub(c.LastHeartbeat) > time.Duration(missed*hbs)*time.Second+10*time.Second {
		return api.StateOffline
	}
	for _, mo := range c.Modules {
		if mo.State == "failed" {
			return api.StateWarning
		}
	}
	if c.PolicyError != "" {
		return api.StateWarning
	}
	return api.StateOnline
}

func (m *Manager) withState(r *http.Request, tenant string, cs []api.Computer) error {
	st, err := m.store.Settings(r.Context(), tenant)
	if err != nil {
		return err
	}
	now := time.Now()
	for i := range cs {
		cs[i].State = computerState(cs[i], st, now)
	}
	return nil
}

func (m *Manager) handleListComputers(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if err := m.hbw.flush(r.Context()); err != nil {
		return err
	}
	q := r.URL.Query()
	cs, err := m.store.Computers(r.Context(), rc.tenant, store.ComputerFilter{Group: q.Get("group"), PolicyID: q.Get("policy_id"), Hostname: q.Get("hostname")})
	if err != nil {
		return err
	}
	if err := m.withState(r, rc.tenant, cs); err != nil {
		return err
	}
	if s := q.Get("state"); s != "" {
		cs = slices.DeleteFunc(cs, func(c api.Computer) bool { return c.State != s })
	}
	writeJSON(w, http.StatusOK, api.Page[api.Computer]{Items: cs, Total: len(cs)})
	return nil
}

func (m *Manager) computer(r *http.Request, rc *reqCtx) (api.Computer, error) {
	if err := m.hbw.flush(r.Context()); err != nil {
		return api.Computer{}, err
	}
	c, err := m.store.Computer(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return c, err
	}
	cs := []api.Computer{c}
	err = m.withState(r, rc.tenant, cs)
	return cs[0], err
}

func (m *Manager) handleGetComputer(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	c, err := m.computer(r, rc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (m *Manager) handlePatchComputer(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var p api.ComputerPatch
	if err := decode(w, r, maxPublicBody, &p); err != nil {
		return err
	}
	if p.PolicyID != nil && *p.PolicyID != "" {
		if _, err := m.store.Policy(r.Context(), rc.tenant, *p.PolicyID); err != nil {
			return errf(http.StatusBadRequest, "policy_id", "field policy_id: no such policy")
		}
	}
	c, err := m.store.PatchComputer(r.Context(), rc.tenant, r.PathValue("id"), p)
	if err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "computer.update", "computer", c.ID, p)
	m.hub.notify(computerKey(c.ID))
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (m *Manager) handleDeleteComputer(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if err := m.store.DeleteComputer(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "computer.delete", "computer", id, nil)
	m.hub.notify(computerKey(id))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) setDeactivated(w http.ResponseWriter, r *http.Request, rc *reqCtx, v bool) error {
	id := r.PathValue("id")
	if err := m.store.SetDeactivated(r.Context(), rc.tenant, id, v); err != nil {
		return err
	}
	action := "computer.activate"
	if v {
		action = "computer.deactivate"
	}
	m.audit(r.Context(), rc, "", action, "computer", id, nil)
	m.hub.notify(computerKey(id))
	c, err := m.computer(r, rc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (m *Manager) handleDeactivate(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.setDeactivated(w, r, rc, true)
}

func (m *Manager) handleActivate(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.setDeactivated(w, r, rc, false)
}

func (m *Manager) handleComputerPolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	c, err := m.store.Computer(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	ep, _, err := m.effective(r.Context(), c)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+ep.Version+`"`)
	writeJSON(w, http.StatusOK, ep)
	return nil
}

func (m *Manager) handleComputerResolved(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	c, err := m.store.Computer(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	_, rp, err := m.effective(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rp)
	return nil
}

// handleComputerPolicyDiff diffs two versions (?from=&to=); from defaults
// to the version the agent last applied, to to the current one.
func (m *Manager) handleComputerPolicyDiff(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ctx := r.Context()
	if err := m.hbw.flush(ctx); err != nil {
		return err
	}
	c, err := m.store.Computer(ctx, rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	cur, _, err := m.effective(ctx, c)
	if err != nil {
		return err
	}
	load := func(field, v string, def api.EffectivePolicy) (api.EffectivePolicy, error) {
		if v == "" || v == def.Version {
			return def, nil
		}
		ep, err := m.store.PolicyVersion(ctx, rc.tenant, v)
		if errors.Is(err, store.ErrNotFound) {
			return ep, errf(http.StatusNotFound, field, "query %s: no policy version %q", field, v)
		}
		return ep, err
	}
	q := r.URL.Query()
	fromV := q.Get("from")
	if fromV == "" {
		fromV = c.AppliedPolicyVersion
	}
	from, err := load("from", fromV, cur)
	if err != nil {
		return err
	}
	to, err := load("to", q.Get("to"), cur)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.PolicyDiff{From: from.Version, To: to.Version, Changes: policy.Diff(from, to)})
	return nil
}

var commandTypes = map[string]bool{api.CommandScanNow: true, api.CommandUpdateNow: true, api.CommandRebuildBaseline: true, api.CommandRenewCert: true}

func (m *Manager) handleQueueCommand(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var req api.CommandRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if !commandTypes[req.Type] {
		return errf(http.StatusBadRequest, "type", "field type: unknown command %q (want scan_now, update_now, rebuild_baseline or renew_certificate)", req.Type)
	}
	id := r.PathValue("id")
	cmd, err := m.store.QueueCommand(r.Context(), rc.tenant, id, req.Type, req.Args)
	if err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "command.queue", "computer", id, req)
	m.hub.notify(computerKey(id))
	writeJSON(w, http.StatusCreated, cmd)
	return nil
}

func (m *Manager) handleListCommands(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if _, err := m.store.Computer(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	cs, err := m.store.Commands(r.Context(), rc.tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.CommandStatus]{Items: cs})
	return nil
}
