package manager

import (
	"encoding/json"
	"net/http"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

func (m *Manager) validAlertRule(r *http.Request, rc *reqCtx, req api.AlertRuleRequest) error {
	if err := validName("name", req.Name); err != nil {
		return err
	}
	if req.MinSeverity != "" {
		if _, err := event.ParseSeverity(req.MinSeverity); err != nil {
			return errf(http.StatusBadRequest, "min_severity", "field min_severity: %v", err)
		}
	}
	for i, id := range req.NotifierIDs {
		if _, err := m.store.Notifier(r.Context(), rc.tenant, id); err != nil {
			return errf(http.StatusBadRequest, "notifier_ids", "field notifier_ids[%d]: no such notifier", i)
		}
	}
	return nil
}

func (m *Manager) putAlertRule(w http.ResponseWriter, r *http.Request, rc *reqCtx, id string) error {
	var req api.AlertRuleRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if err := m.validAlertRule(r, rc, req); err != nil {
		return err
	}
	ar := api.AlertRule{ID: id, Name: req.Name, Enabled: req.Enabled == nil || *req.Enabled, Module: req.Module, MinSeverity: req.MinSeverity,
		RuleID: req.RuleID, Group: req.Group, NotifierIDs: req.NotifierIDs}
	ar, err := m.store.PutAlertRule(r.Context(), rc.tenant, ar)
	if err != nil {
		return err
	}
	action, status := "alert_rule.update", http.StatusOK
	if id == "" {
		action, status = "alert_rule.create", http.StatusCreated
	}
	m.audit(r.Context(), rc, "", action, "alert_rule", ar.ID, req)
	writeJSON(w, status, ar)
	return nil
}

func (m *Manager) handleCreateAlertRule(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.putAlertRule(w, r, rc, "")
}

func (m *Manager) handlePutAlertRule(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if _, err := m.store.AlertRule(r.Context(), rc.tenant, r.PathValue("id")); err != nil {
		return err
	}
	return m.putAlertRule(w, r, rc, r.PathValue("id"))
}

func (m *Manager) handleListAlertRules(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	rs, err := m.store.AlertRules(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.AlertRule]{Items: rs})
	return nil
}

func (m *Manager) handleGetAlertRule(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ar, err := m.store.AlertRule(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ar)
	return nil
}

func (m *Manager) handleDeleteAlertRule(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if err := m.store.DeleteAlertRule(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "alert_rule.delete", "alert_rule", id, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) handleListAlerts(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	status := r.URL.Query().Get("status")
	if status != "" && status != api.AlertOpen && status != api.AlertAcknowledged && status != api.AlertDismissed {
		return errf(http.StatusBadRequest, "status", "query status: open, acknowledged or dismissed")
	}
	limit, err := queryInt(r.URL.Query().Get("limit"), "limit", 100)
	if err != nil {
		return err
	}
	as, err := m.store.Alerts(r.Context(), rc.tenant, status, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.Alert]{Items: as})
	return nil
}

func (m *Manager) setAlert(w http.ResponseWriter, r *http.Request, rc *reqCtx, status string) error {
	id := r.PathValue("id")
	if err := m.store.SetAlertStatus(r.Context(), rc.tenant, id, status, rc.actor()); err != nil {
		return err
	}
	m.audit(r.Context(), rc, "", "alert."+status, "alert", id, nil)
	a, err := m.store.Alert(r.Context(), rc.tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (m *Manager) handleAckAlert(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.setAlert(w, r, rc, api.AlertAcknowledged)
}

func (m *Manager) handleDismissAlert(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.setAlert(w, r, rc, api.AlertDismissed)
}

var notifierTypes = map[string]bool{"webhook": true, "syslog": true, "smtp": true}

func (m *Manager) putNotifier(w http.ResponseWriter, r *http.Request, rc *reqCtx, id string) error {
	var req api.NotifierRequest
	if err := decode(w, r, maxPublicBody, &req); err != nil {
		return err
	}
	if err := validName("name", req.Name); err != nil {
		return err
	}
	if !notifierTypes[req.Type] {
		return errf(http.StatusBadRequest, "type", "field type: webhook, syslog or smtp")
	}
	if len(req.Config) == 0 || !json.Valid(req.Config) || req.Config[0] != '{' {
		return errf(http.StatusBadRequest, "config", "field config: want a JSON object")
	}
	if err := validateNotifierConfig(req.Type, req.Config); err != nil {
		return err
	}
	n, err := m.store.PutNotifier(r.Context(), rc.tenant, api.Notifier{ID: id, Name: req.Name, Type: req.Type, Config: req.Config})
	if err != nil {
		return err
	}
	action, status := "notifier.update", http.StatusOK
	if id == "" {
		action, status = "notifier.create", http.StatusCreated
	}
	// Notifier configs can hold secrets (SMTP password): audit the name
	// and type only.
	m.audit(r.Context(), rc, "", action, "notifier", n.ID, map[string]string{"name": n.Name, "type": n.Type})
	writeJSON(w, status, n)
	return nil
}

func (m *Manager) handleCreateNotifier(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	return m.putNotifier(w, r, rc, "")
}

func (m *Manager) handlePutNotifier(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	if _, err := m.store.Notifier(r.Context(), rc.tenant, r.PathValue("id")); err != nil {
		return err
	}
	return m.putNotifier(w, r, rc, r.PathValue("id"))
}

func (m *Manager) handleListNotifiers(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ns, err := m.store.Notifiers(r.Context(), rc.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[api.Notifier]{Items: ns})
	return nil
}

func (m *Manager) handleGetNotifier(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	n, err := m.store.Notifier(r.Context(), rc.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (m *Manager) handleDeleteNotifier(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	id := r.PathValue("id")
	if err := m.store.DeleteNotifier(r.Context(), rc.tenant, id); err != nil {
		return err
	}
	m.notifier.Forget(id)
	m.audit(r.Context(), rc, "", "notifier.delete", "notifier", id, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
