// Package api is the contract between agents, the manager and automation:
// the paths and JSON bodies of the versioned REST API (/api/v1). The agent
// and the manager both import it; neither imports the other.
package api

// Version is the API path prefix.
const Version = "/api/v1"

// Agent-facing paths. All but Enroll require the agent's mTLS client
// certificate issued at enrolment.
const (
	PathEnroll        = Version + "/agent/enroll"     // POST EnrollRequest → EnrollResponse (token auth, no client cert)
	PathRenew         = Version + "/agent/renew"      // POST RenewRequest → RenewResponse
	PathHeartbeat     = Version + "/agent/heartbeat"  // POST Heartbeat → HeartbeatResponse; ?wait=30s long-polls
	PathAgentPolicy   = Version + "/agent/policy"     // GET → EffectivePolicy; If-None-Match: version → 304
	PathAgentRulePack = Version + "/agent/rulepacks/" // GET {name}/{version} → signed pack archive (application/gzip)
	PathAgentEvents   = Version + "/agent/events"     // POST EventBatch → IngestResult
	PathAgentCommand  = Version + "/agent/commands/"  // POST {id}/ack CommandAck
)

// Public paths (API key: "Authorization: Bearer <key>"). See openapi.yaml in
// manager/ for the full list with methods and bodies.
const (
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
)

// Error is the body of every non-2xx answer. Message is safe to show; Field
// names the offending JSON field when there is one.
type Error struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ErrorBody wraps Error: {"error": {...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Page is the paging envelope of list answers: pass Next back as ?cursor=.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
	Total int    `json:"total,omitempty"`
}
