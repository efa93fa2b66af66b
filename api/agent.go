package api

import (
	"encoding/json"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// HostInfo identifies the machine an agent runs on. MachineID is
// /etc/machine-id; InstanceID the cloud instance ID when known. Together with
// the certificate they detect cloned disk images.
type HostInfo struct {
	Hostname     string   `json:"hostname"`
	MachineID    string   `json:"machine_id"`
	InstanceID   string   `json:"instance_id,omitempty"`
	OS           string   `json:"os,omitempty"`
	Kernel       string   `json:"kernel,omitempty"`
	Arch         string   `json:"arch,omitempty"`
	IPs          []string `json:"ips,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
}

// EnrollRequest is sent once with an enrolment token. CSR is a PEM
// certificate request for an ECDSA P-256 or Ed25519 key; its subject CN is
// ignored (the manager names the certificate after the new computer ID).
type EnrollRequest struct {
	Token string   `json:"token"`
	CSR   string   `json:"csr"`
	Host  HostInfo `json:"host"`
}

// EnrollResponse gives the agent its identity.
type EnrollResponse struct {
	ComputerID  string `json:"computer_id"`
	TenantID    string `json:"tenant_id"`
	Certificate string `json:"certificate"` // PEM, client auth
	CA          string `json:"ca"`          // PEM: trust anchor for the manager's server cert and ours
	// RulePackKeys are the ed25519 public keys (base64, std encoding) whose
	// signatures on rule packs the agent accepts.
	RulePackKeys     []string `json:"rulepack_keys"`
	HeartbeatSeconds int      `json:"heartbeat_seconds"`
}

// RenewRequest asks for a new certificate before the current one expires.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// ModuleState is a module's state as the agent reports it.
type ModuleState struct {
	Name      string           `json:"name"`
	State     string           `json:"state"` // agent.State values
	Reason    string           `json:"reason,omitempty"`
	Mode      string           `json:"mode,omitempty"`
	RuleCount int              `json:"rule_count"`
	LastError string           `json:"last_error,omitempty"`
	Counters  map[string]int64 `json:"counters,omitempty"`
}

// Heartbeat is the agent's periodic report.
type Heartbeat struct {
	Host          HostInfo      `json:"host"`
	AgentTime     time.Time     `json:"agent_time"`          // for clock-skew detection
	PolicyVersion string        `json:"policy_version"`      // the version applied
	RulePacks     []RulePackRef `json:"rulepacks,omitempty"` // packs active
	Modules       []ModuleState `json:"modules"`
	QueueDepth    int64         `json:"queue_depth"` // events waiting in the outbox
	Dropped       int64         `json:"dropped"`     // events dropped by the overflow policy, ever
	PolicyError   string        `json:"policy_error,omitempty"`
}

// HeartbeatResponse tells the agent what to do next.
type HeartbeatResponse struct {
	ServerTime       time.Time `json:"server_time"`
	PolicyVersion    string    `json:"policy_version"` // current effective version; differs → GET policy
	HeartbeatSeconds int       `json:"heartbeat_seconds"`
	Commands         []Command `json:"commands,omitempty"`
	RenewCertificate bool      `json:"renew_certificate,omitempty"`
	// ClockSkewSeconds is agent_time − server_time as the manager saw it.
	ClockSkewSeconds float64 `json:"clock_skew_seconds,omitempty"`
}

// Command types the manager can send.
const (
	CommandScanNow         = "scan_now"         // Args: {"module": "antimalware"|"integrity"}
	CommandUpdateNow       = "update_now"       // fetch policy and rule packs now
	CommandRebuildBaseline = "rebuild_baseline" // integrity
	CommandRenewCert       = "renew_certificate"
)

// Command is an instruction for one computer.
type Command struct {
	ID      string            `json:"id"`
	Type    string            `json:"type"`
	Args    map[string]string `json:"args,omitempty"`
	Created time.Time         `json:"created"`
}

// CommandAck reports a command's outcome.
type CommandAck struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// RulePackRef names one signed rule-pack version.
type RulePackRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"` // of the archive
}

// ModulePolicy is one module's part of the effective policy.
type ModulePolicy struct {
	Enabled   bool            `json:"enabled"`
	Settings  json.RawMessage `json:"settings,omitempty"`
	RulePacks []string        `json:"rulepacks,omitempty"` // names of packs whose files for this module apply
}

// EffectivePolicy is what the agent applies: computed by the manager from
// the policy tree, the computer's overrides and the assigned rule packs.
type EffectivePolicy struct {
	Version          string                  `json:"version"` // content hash; ETag
	PolicyID         string                  `json:"policy_id"`
	PolicyName       string                  `json:"policy_name,omitempty"`
	HeartbeatSeconds int                     `json:"heartbeat_seconds"`
	Budget           Budget                  `json:"budget"`
	Modules          map[string]ModulePolicy `json:"modules"`
	RulePacks        []RulePackRef           `json:"rulepacks,omitempty"`
	Outbox           OutboxPolicy            `json:"outbox"`
}

// Budget caps the agent's heavy work so scans never hurt the workload.
type Budget struct {
	CPUPercent int  `json:"cpu_percent,omitempty"` // of one core; 0 = no cap
	IdleIO     bool `json:"idle_io"`
}

// OutboxPolicy bounds the agent's durable event queue.
type OutboxPolicy struct {
	MaxBytes int64  `json:"max_bytes,omitempty"` // 0 = agent default (256 MiB)
	Overflow string `json:"overflow,omitempty"`  // "drop_oldest" (default) | "drop_newest"
}

// EventBatch is an upload of events. IDs make ingest idempotent: the
// manager ignores an event whose ID it already stored.
type EventBatch struct {
	Events []event.Event `json:"events"`
}

// IngestResult counts what the manager did with a batch.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	// Errors name rejected events by index and field.
	Errors []string `json:"errors,omitempty"`
}

// MaxBatchEvents and MaxBodyBytes bound uploads; larger bodies get 413.
const (
	MaxBatchEvents = 5000
	MaxBodyBytes   = 16 << 20
)
