package api

import (
	"encoding/json"
	"time"
)

// This file holds the public REST types (API-key auth). Paths and methods
// are listed in manager/openapi.yaml.

// Tenant is an isolated customer space: every other object belongs to one.
type Tenant struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// TenantRequest creates a tenant (system admin keys only).
type TenantRequest struct {
	Name string `json:"name"`
}

// APIKey describes a key; Key (the secret) is only set in the answer that
// created it: the manager stores a hash.
type APIKey struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	SystemAdmin bool      `json:"system_admin"`
	Created     time.Time `json:"created"`
	Key         string    `json:"key,omitempty"`
}

// APIKeyRequest creates a key in the caller's tenant (or, for system
// admins, in TenantID).
type APIKeyRequest struct {
	Name        string `json:"name"`
	TenantID    string `json:"tenant_id,omitempty"`
	SystemAdmin bool   `json:"system_admin,omitempty"`
}

// EnrollmentToken lets agents enrol into a tenant, policy and group. Token
// (the secret) is only set in the answer that created it.
type EnrollmentToken struct {
	ID       string    `json:"id"`
	TenantID string    `json:"tenant_id"`
	PolicyID string    `json:"policy_id,omitempty"`
	Group    string    `json:"group,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	Expires  time.Time `json:"expires"`
	MaxUses  int       `json:"max_uses"`
	Uses     int       `json:"uses"`
	Revoked  bool      `json:"revoked"`
	Created  time.Time `json:"created"`
	Token    string    `json:"token,omitempty"`
}

// TokenRequest creates an enrolment token. TTL is a Go duration ("24h");
// empty means 24h. MaxUses 0 means 1.
type TokenRequest struct {
	PolicyID string   `json:"policy_id,omitempty"`
	Group    string   `json:"group,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	TTL      string   `json:"ttl,omitempty"`
	MaxUses  int      `json:"max_uses,omitempty"`
}

// Computer states.
const (
	StateOnline      = "online"
	StateOffline     = "offline"
	StateWarning     = "warning"
	StateDeactivated = "deactivated"
)

// Computer is one enrolled agent's host and its inventory.
type Computer struct {
	ID                   string        `json:"id"`
	TenantID             string        `json:"tenant_id"`
	Host                 HostInfo      `json:"host"`
	State                string        `json:"state"`
	PolicyID             string        `json:"policy_id,omitempty"`
	Group                string        `json:"group,omitempty"`
	Tags                 []string      `json:"tags,omitempty"`
	AppliedPolicyVersion string        `json:"applied_policy_version,omitempty"`
	PolicyError          string        `json:"policy_error,omitempty"`
	Modules              []ModuleState `json:"modules,omitempty"`
	RulePacks            []RulePackRef `json:"rulepacks,omitempty"`
	QueueDepth           int64         `json:"queue_depth"`
	Dropped              int64         `json:"dropped"`
	ClockSkewSeconds     float64       `json:"clock_skew_seconds"`
	LastHeartbeat        time.Time     `json:"last_heartbeat"`
	Enrolled             time.Time     `json:"enrolled"`
	CertSerial           string        `json:"cert_serial"`
	CertFingerprint      string        `json:"cert_fingerprint"`
	CertNotAfter         time.Time     `json:"cert_not_after"`
	Overrides            PolicyModules `json:"overrides,omitempty"`
	Deactivated          bool          `json:"deactivated"`
}

// ComputerPatch changes a computer's assignment. Nil fields stay.
type ComputerPatch struct {
	PolicyID  *string        `json:"policy_id,omitempty"`
	Group     *string        `json:"group,omitempty"`
	Tags      *[]string      `json:"tags,omitempty"`
	Overrides *PolicyModules `json:"overrides,omitempty"`
}

// CommandRequest queues a command for a computer.
type CommandRequest struct {
	Type string            `json:"type"`
	Args map[string]string `json:"args,omitempty"`
}

// CommandStatus is a queued command and its outcome.
type CommandStatus struct {
	Command
	ComputerID string     `json:"computer_id"`
	Delivered  *time.Time `json:"delivered,omitempty"`
	Acked      *time.Time `json:"acked,omitempty"`
	OK         bool       `json:"ok"`
	Error      string     `json:"error,omitempty"`
}

// PolicyModule is one module's part of a policy node. Nil/absent fields are
// inherited from the parent; Settings are merged key by key (a child's key
// replaces the parent's).
type PolicyModule struct {
	Enabled   *bool                      `json:"enabled,omitempty"`
	Settings  map[string]json.RawMessage `json:"settings,omitempty"`
	RulePacks []string                   `json:"rulepacks,omitempty"`
}

// PolicyModules maps module name → its part.
type PolicyModules map[string]PolicyModule

// Policy is a node of the policy tree.
type Policy struct {
	ID               string        `json:"id"`
	TenantID         string        `json:"tenant_id"`
	ParentID         string        `json:"parent_id,omitempty"`
	Name             string        `json:"name"`
	Description      string        `json:"description,omitempty"`
	HeartbeatSeconds int           `json:"heartbeat_seconds,omitempty"` // 0 = inherit
	Budget           *Budget       `json:"budget,omitempty"`            // nil = inherit
	Outbox           *OutboxPolicy `json:"outbox,omitempty"`            // nil = inherit
	Modules          PolicyModules `json:"modules,omitempty"`
	Created          time.Time     `json:"created"`
	Updated          time.Time     `json:"updated"`
}

// PolicyRequest creates or replaces a policy node.
type PolicyRequest struct {
	ParentID         string        `json:"parent_id,omitempty"`
	Name             string        `json:"name"`
	Description      string        `json:"description,omitempty"`
	HeartbeatSeconds int           `json:"heartbeat_seconds,omitempty"`
	Budget           *Budget       `json:"budget,omitempty"`
	Outbox           *OutboxPolicy `json:"outbox,omitempty"`
	Modules          PolicyModules `json:"modules,omitempty"`
}

// ResolvedValue is one resolved setting and where it came from.
type ResolvedValue struct {
	Value     json.RawMessage `json:"value"`
	Source    string          `json:"source"` // policy ID, "computer" or "default"
	Inherited bool            `json:"inherited"`
}

// ResolvedModule shows each setting of a module with its origin.
type ResolvedModule struct {
	Enabled   ResolvedValue            `json:"enabled"`
	Settings  map[string]ResolvedValue `json:"settings"`
	RulePacks ResolvedValue            `json:"rulepacks"`
}

// ResolvedPolicy is a policy (or a computer's effective policy) with the
// origin of every value: what the console shows as "inherited from …".
type ResolvedPolicy struct {
	PolicyID string                    `json:"policy_id"`
	Chain    []string                  `json:"chain"` // root first
	Modules  map[string]ResolvedModule `json:"modules"`
}

// PolicyDiff lists what differs between two effective policies.
type PolicyDiff struct {
	From    string       `json:"from"`
	To      string       `json:"to"`
	Changes []DiffChange `json:"changes"`
}

// DiffChange is one changed JSON path ("modules.antimalware.settings.x").
type DiffChange struct {
	Path string          `json:"path"`
	Old  json.RawMessage `json:"old,omitempty"`
	New  json.RawMessage `json:"new,omitempty"`
}

// RulePack is an imported pack version.
type RulePack struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	Description string    `json:"description,omitempty"`
	Files       int       `json:"files"`
	Imported    time.Time `json:"imported"`
	// Distributed is when the scheduler made this version the one agents
	// get; zero while it waits for its schedule.
	Distributed *time.Time `json:"distributed,omitempty"`
}

// RulePackImportURL imports a pack from a URL.
type RulePackImportURL struct {
	URL string `json:"url"`
}

// RulePackSchedule is when new versions of a pack reach agents:
// "immediate" or a daily UTC time "HH:MM".
type RulePackSchedule struct {
	Schedule string `json:"schedule"`
}

// Settings are a tenant's operational settings.
type Settings struct {
	EventRetentionDays      int `json:"event_retention_days"`      // 0 = keep forever
	OfflineAfterMissed      int `json:"offline_after_missed"`      // heartbeats
	InactiveCleanupDays     int `json:"inactive_cleanup_days"`     // 0 = never remove
	DefaultHeartbeatSeconds int `json:"default_heartbeat_seconds"` // when no policy sets it
}

// SettingsPatch changes some settings.
type SettingsPatch struct {
	EventRetentionDays      *int `json:"event_retention_days,omitempty"`
	OfflineAfterMissed      *int `json:"offline_after_missed,omitempty"`
	InactiveCleanupDays     *int `json:"inactive_cleanup_days,omitempty"`
	DefaultHeartbeatSeconds *int `json:"default_heartbeat_seconds,omitempty"`
}

// AuditEntry is one change made through the API.
type AuditEntry struct {
	ID         int64           `json:"id"`
	TenantID   string          `json:"tenant_id"`
	Time       time.Time       `json:"time"`
	Actor      string          `json:"actor"` // "key:<id>", "agent:<computer>", "system"
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id,omitempty"`
	Remote     string          `json:"remote,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

// AlertRule raises an alert for events that match all of its set fields.
type AlertRule struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Enabled     bool      `json:"enabled"`
	Module      string    `json:"module,omitempty"`
	MinSeverity string    `json:"min_severity,omitempty"`
	RuleID      string    `json:"rule_id,omitempty"`
	Group       string    `json:"group,omitempty"`
	NotifierIDs []string  `json:"notifier_ids,omitempty"`
	Created     time.Time `json:"created"`
}

// AlertRuleRequest creates or replaces an alert rule.
type AlertRuleRequest struct {
	Name        string   `json:"name"`
	Enabled     *bool    `json:"enabled,omitempty"`
	Module      string   `json:"module,omitempty"`
	MinSeverity string   `json:"min_severity,omitempty"`
	RuleID      string   `json:"rule_id,omitempty"`
	Group       string   `json:"group,omitempty"`
	NotifierIDs []string `json:"notifier_ids,omitempty"`
}

// Alert states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertDismissed    = "dismissed"
)

// Alert is an event that matched an alert rule.
type Alert struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	AlertRuleID string    `json:"alert_rule_id"`
	EventID     string    `json:"event_id"`
	ComputerID  string    `json:"computer_id,omitempty"`
	Severity    string    `json:"severity"`
	Message     string    `json:"message"`
	Status      string    `json:"status"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	UpdatedBy   string    `json:"updated_by,omitempty"`
}

// Notifier is a configured destination for alerts: Type is "webhook",
// "syslog" or "smtp"; Config its settings (see the notify package).
type Notifier struct {
	ID       string          `json:"id"`
	TenantID string          `json:"tenant_id"`
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Config   json.RawMessage `json:"config"`
	Created  time.Time       `json:"created"`
}

// NotifierRequest creates or replaces a notifier.
type NotifierRequest struct {
	Name   string          `json:"name"`
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config"`
}
