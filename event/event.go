// Package event is mamori's one event model: every engine emits Events, the
// agent queues them, the manager stores, alerts on and forwards them. It is at
// the bottom of the import graph and imports nothing of ours.
package event

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"
)

// Kind says what happened, as "<module>.<what>". Later waves add their own
// kinds (netips.alert, webips.block, dns.block, cloud.finding …) without
// changing the shape of Event.
type Kind string

// Kinds emitted by the first-wave engines and the runtimes.
const (
	KindMalwareDetection Kind = "malware.detection"
	KindMalwareScanError Kind = "malware.scan_error"
	KindScanSummary      Kind = "malware.scan_summary"
	KindIntegrityChange  Kind = "integrity.change"
	KindIntegrityError   Kind = "integrity.error"
	KindLogAlert         Kind = "log.alert"
	KindFirewallDrop     Kind = "firewall.drop"
	KindFirewallScan     Kind = "firewall.portscan"
	KindFirewallDrift    Kind = "firewall.drift"
	KindFirewallBlock    Kind = "firewall.block"
	KindNetworkAlert     Kind = "netips.alert"
	KindHTTPAlert        Kind = "webips.alert"
	KindDNSBlock         Kind = "dns.block"
	KindCloudFinding     Kind = "cloud.finding"
	KindAgentModuleState Kind = "agent.module_state"
	KindAgentSelfProtect Kind = "agent.self_protection"
	KindAgentRulePack    Kind = "agent.rulepack"
	KindAgentOutboxDrop  Kind = "agent.outbox_overflow"
)

// Severity follows OCSF severity_id: 0 unknown, 1 informational … 5 critical.
type Severity int

const (
	SeverityUnknown Severity = iota
	SeverityInfo
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"unknown", "info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts the names above (and Sigma's "informational").
func ParseSeverity(s string) (Severity, error) {
	switch s {
	case "informational":
		return SeverityInfo, nil
	}
	for i, n := range severityNames {
		if n == s {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want one of unknown, info, low, medium, high, critical)", s)
}

func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Event is one thing a module saw. Optional parts are pointers so that a
// firewall drop does not carry an empty file and a malware hit no endpoints.
type Event struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Kind       Kind      `json:"kind"`
	Severity   Severity  `json:"severity"`
	Module     string    `json:"module,omitempty"`
	Host       string    `json:"host,omitempty"`
	ComputerID string    `json:"computer_id,omitempty"`
	Message    string    `json:"message"`
	// Action is what mamori did: "alerted", "blocked", "quarantined",
	// "deleted", "denied", "allowed", "restored".
	Action string `json:"action,omitempty"`

	Rule     *Rule     `json:"rule,omitempty"`
	Src      *Endpoint `json:"src,omitempty"`
	Dst      *Endpoint `json:"dst,omitempty"`
	Protocol string    `json:"protocol,omitempty"`
	File     *File     `json:"file,omitempty"`
	Process  *Process  `json:"process,omitempty"`
	User     *User     `json:"user,omitempty"`
	HTTP     *HTTP     `json:"http,omitempty"`
	DNS      *DNS      `json:"dns,omitempty"`
	Cloud    *Cloud    `json:"cloud,omitempty"`

	// Changes lists attribute diffs (integrity, firewall drift, posture).
	Changes []Change `json:"changes,omitempty"`
	// Evidence holds the bounded raw material that triggered the event:
	// log lines, matched strings, packet payload excerpts.
	Evidence []string          `json:"evidence,omitempty"`
	Count    int               `json:"count,omitempty"` // aggregated occurrences, 0 = 1
	Raw      string            `json:"raw,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// Rule names the rule or signature that produced the event.
type Rule struct {
	ID      string   `json:"id"`
	Name    string   `json:"name,omitempty"`
	Source  string   `json:"source,omitempty"` // pack or file the rule came from
	Version string   `json:"version,omitempty"`
	Author  string   `json:"author,omitempty"` // DRL 1.1 asks that Sigma authors be shown
	Tags    []string `json:"tags,omitempty"`
	Refs    []string `json:"refs,omitempty"` // URLs, CVE IDs, CIS control IDs
}

// Endpoint is one side of a network conversation.
type Endpoint struct {
	IP        string `json:"ip,omitempty"`
	Port      int    `json:"port,omitempty"`
	Hostname  string `json:"hostname,omitempty"`
	Interface string `json:"interface,omitempty"`
}

// File describes a file as seen by the emitting module.
type File struct {
	Path   string            `json:"path"`
	Size   int64             `json:"size,omitempty"`
	Mode   string            `json:"mode,omitempty"`
	UID    *int              `json:"uid,omitempty"`
	GID    *int              `json:"gid,omitempty"`
	Owner  string            `json:"owner,omitempty"`
	Inode  uint64            `json:"inode,omitempty"`
	MTime  *time.Time        `json:"mtime,omitempty"`
	Hashes map[string]string `json:"hashes,omitempty"` // "sha256" → hex
	Type   string            `json:"type,omitempty"`   // "regular", "elf", "zip" …
	Inner  string            `json:"inner,omitempty"`  // path inside an archive
}

// Process is the actor, when known.
type Process struct {
	PID     int    `json:"pid,omitempty"`
	PPID    int    `json:"ppid,omitempty"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	UID     *int   `json:"uid,omitempty"`
	User    string `json:"user,omitempty"`
}

// User is the account an event is about (login target, changed account).
type User struct {
	Name string `json:"name,omitempty"`
	UID  *int   `json:"uid,omitempty"`
}

// HTTP is an HTTP request seen by log inspection or web IPS.
type HTTP struct {
	Method    string `json:"method,omitempty"`
	URL       string `json:"url,omitempty"`
	Host      string `json:"host,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	Status    int    `json:"status,omitempty"`
}

// DNS is a query seen by the DNS firewall or network IPS.
type DNS struct {
	Query string `json:"query,omitempty"`
	Type  string `json:"type,omitempty"`
	RCode string `json:"rcode,omitempty"`
}

// Cloud is a cloud resource an event is about.
type Cloud struct {
	Provider     string `json:"provider,omitempty"` // "aws"
	Account      string `json:"account,omitempty"`
	Region       string `json:"region,omitempty"`
	ResourceType string `json:"resource_type,omitempty"`
	ResourceID   string `json:"resource_id,omitempty"`
	Name         string `json:"name,omitempty"`
}

// Change is one attribute that went from Old to New.
type Change struct {
	Attr string `json:"attr"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

var idCounter atomic.Uint64

// NewID returns a unique, roughly time-ordered event ID: 48 bits of
// milliseconds, then 80 random-plus-counter bits, hex encoded. IDs are
// assigned once at emit time so retries and replays deduplicate.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:12])
	c := idCounter.Add(1)
	b[12], b[13], b[14], b[15] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return hex.EncodeToString(b[:])
}

// Fill sets ID and Time when they are empty. Emitters call it so every event
// carries an ID from the moment it exists.
func (e *Event) Fill() {
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
}

// Validate checks the fields every consumer relies on.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("event: missing field id")
	case len(e.ID) > 64:
		return fmt.Errorf("event: field id longer than 64 bytes")
	case e.Time.IsZero():
		return fmt.Errorf("event %s: missing field time", e.ID)
	case e.Kind == "":
		return fmt.Errorf("event %s: missing field kind", e.ID)
	case e.Severity < SeverityUnknown || e.Severity > SeverityCritical:
		return fmt.Errorf("event %s: field severity out of range", e.ID)
	}
	return nil
}
