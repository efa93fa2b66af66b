package manager

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/store"
)

type authKind int

const (
	authNone  authKind = iota
	authKey            // API key of a tenant
	authAdmin          // system admin API key
	authAgent          // mTLS client certificate of an active computer
)

// reqCtx is who is calling.
type reqCtx struct {
	key      *api.APIKey
	computer *api.Computer // agent requests: identity fields only, see store.ComputerIdentity
	tenant   string
	agent    agentAuth // what authAgent learnt beyond the computer
	remote   string
}

func (rc *reqCtx) actor() string {
	switch {
	case rc.key != nil:
		return "key:" + rc.key.ID
	case rc.computer != nil:
		return "agent:" + rc.computer.ID
	}
	return "anonymous"
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rc *reqCtx) error

// route is one entry of the API; the table is also what the OpenAPI test
// compares with openapi.yaml.
type route struct {
	method, path string
	auth         authKind
	h            handlerFunc
}

func (m *Manager) routeTable() []route {
	v := api.Version
	return []route{
		{"POST", api.PathEnroll, authNone, m.handleEnroll},
		{"POST", api.PathRenew, authAgent, m.handleRenew},
		{"POST", api.PathHeartbeat, authAgent, m.handleHeartbeat},
		{"GET", api.PathAgentPolicy, authAgent, m.handleAgentPolicy},
		{"GET", api.PathAgentRulePack + "{name}/{version}", authAgent, m.handleAgentRulePack},
		{"POST", api.PathAgentEvents, authAgent, m.handleIngest},
		{"POST", api.PathAgentCommand + "{id}/ack", authAgent, m.handleCommandAck},

		{"GET", v + "/tenants", authAdmin, m.handleListTenants},
		{"POST", v + "/tenants", authAdmin, m.handleCreateTenant},
		{"GET", v + "/apikeys", authKey, m.handleListKeys},
		{"POST", v + "/apikeys", authKey, m.handleCreateKey},
		{"DELETE", v + "/apikeys/{id}", authKey, m.handleRevokeKey},
		{"GET", v + "/tokens", authKey, m.handleListTokens},
		{"POST", v + "/tokens", authKey, m.handleCreateToken},
		{"GET", v + "/tokens/{id}", authKey, m.handleGetToken},
		{"DELETE", v + "/tokens/{id}", authKey, m.handleRevokeToken},
		{"GET", v + "/computers", authKey, m.handleListComputers},
		{"GET", v + "/computers/{id}", authKey, m.handleGetComputer},
		{"PATCH", v + "/computers/{id}", authKey, m.handlePatchComputer},
		{"DELETE", v + "/computers/{id}", authKey, m.handleDeleteComputer},
		{"POST", v + "/computers/{id}/deactivate", authKey, m.handleDeactivate},
		{"POST", v + "/computers/{id}/activate", authKey, m.handleActivate},
		{"GET", v + "/computers/{id}/effective-policy", authKey, m.handleComputerPolicy},
		{"GET", v + "/computers/{id}/effective-policy/resolved", authKey, m.handleComputerResolved},
		{"GET", v + "/computers/{id}/effective-policy/diff", authKey, m.handleComputerPolicyDiff},
		{"GET", v + "/computers/{id}/commands", authKey, m.handleListCommands},
		{"POST", v + "/computers/{id}/commands", authKey, m.handleQueueCommand},
		{"GET", v + "/policies", authKey, m.handleListPolicies},
		{"POST", v + "/policies", authKey, m.handleCreatePolicy},
		{"GET", v + "/policies/{id}", authKey, m.handleGetPolicy},
		{"PUT", v + "/policies/{id}", authKey, m.handlePutPolicy},
		{"DELETE", v + "/policies/{id}", authKey, m.handleDeletePolicy},
		{"GET", v + "/policies/{id}/resolved", authKey, m.handlePolicyResolved},
		{"GET", v + "/policies/{id}/diff", authKey, m.handlePolicyDiff},
		{"GET", v + "/rulepacks", authKey, m.handleListRulePacks},
		{"POST", v + "/rulepacks", authKey, m.handleImportRulePack},
		{"GET", v + "/rulepacks/{name}/{version}", authKey, m.handleGetRulePack},
		{"GET", v + "/rulepacks/{name}/schedule", authKey, m.handleGetSchedule},
		{"PUT", v + "/rulepacks/{name}/schedule", authKey, m.handlePutSchedule},
		{"GET", v + "/rulepack-keys", authKey, m.handleRulePackKeys},
		{"GET", v + "/events", authKey, m.handleQueryEvents},
		{"GET", v + "/alert-rules", authKey, m.handleListAlertRules},
		{"POST", v + "/alert-rules", authKey, m.handleCreateAlertRule},
		{"GET", v + "/alert-rules/{id}", authKey, m.handleGetAlertRule},
		{"PUT", v + "/alert-rules/{id}", authKey, m.handlePutAlertRule},
		{"DELETE", v + "/alert-rules/{id}", authKey, m.handleDeleteAlertRule},
		{"GET", v + "/alerts", authKey, m.handleListAlerts},
		{"POST", v + "/alerts/{id}/acknowledge", authKey, m.handleAckAlert},
		{"POST", v + "/alerts/{id}/dismiss", authKey, m.handleDismissAlert},
		{"GET", v + "/notifiers", authKey, m.handleListNotifiers},
		{"POST", v + "/notifiers", authKey, m.handleCreateNotifier},
		{"GET", v + "/notifiers/{id}", authKey, m.handleGetNotifier},
		{"PUT", v + "/notifiers/{id}", authKey, m.handlePutNotifier},
		{"DELETE", v + "/notifiers/{id}", authKey, m.handleDeleteNotifier},
		{"GET", v + "/settings", authKey, m.handleGetSettings},
		{"PATCH", v + "/settings", authKey, m.handlePatchSettings},
		{"GET", v + "/audit", authKey, m.handleAudit},
		{"GET", api.PathHealth, authNone, m.handleHealth},
	}
}

func (m *Manager) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range m.routeTable() {
		mux.Handle(rt.method+" "+rt.path, m.wrap(rt))
	}
	mux.Handle("GET "+api.PathMetrics, m.metrics.handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, m.log, r, errf(http.StatusNotFound, "", "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return m.metrics.instrument(mux)
}

func (m *Manager) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := &reqCtx{remote: remoteIP(r)}
		if err := m.authenticate(r, rt.auth, rc); err != nil {
			writeError(w, m.log, r, err)
			return
		}
		if err := rt.h(w, r, rc); err != nil {
			writeError(w, m.log, r, err)
		}
	})
}

func remoteIP(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func (m *Manager) authenticate(r *http.Request, kind authKind, rc *reqCtx) error {
	switch kind {
	case authNone:
		return nil
	case authAgent:
		return m.authAgent(r, rc)
	}
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		return errf(http.StatusUnauthorized, "", "missing API key (Authorization: Bearer <key>)")
	}
	k, err := m.store.APIKeyBySecret(r.Context(), secret)
	if errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusUnauthorized, "", "invalid API key")
	}
	if err != nil {
		return err
	}
	if kind == authAdmin && !k.SystemAdmin {
		return errf(http.StatusForbidden, "", "system admin key required")
	}
	rc.key, rc.tenant = &k, k.TenantID
	return nil
}

// audit records a change. Failing to audit fails nothing else but is
// logged: the change already happened.
func (m *Manager) audit(ctx context.Context, rc *reqCtx, tenant, action, objType, objID string, detail any) {
	var d json.RawMessage
	if detail != nil {
		d, _ = json.Marshal(detail)
	}
	if tenant == "" {
		tenant = rc.tenant
	}
	e := api.AuditEntry{TenantID: tenant, Time: time.Now(), Actor: rc.actor(), Action: action, ObjectType: objType, ObjectID: objID, Remote: rc.remote, Detail: d}
	if err := m.store.Audit(ctx, e); err != nil {
		m.log.Error("writing audit log", "action", action, "err", err)
	}
}

func (m *Manager) handleHealth(w http.ResponseWriter, r *http.Request, _ *reqCtx) error {
	if err := m.store.DB().PingContext(r.Context()); err != nil {
		return errf(http.StatusServiceUnavailable, "", "database unreachable")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}
