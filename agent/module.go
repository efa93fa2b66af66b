// Package agent is the runtime on every protected server: it runs the
// modules (one per defence layer), applies the manager's policy to them,
// keeps their events in a durable outbox and talks to the manager.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/response"
)

// Module is one defence layer. Lifecycle: Configure decodes its policy
// section strictly, fills defaults, validates and swaps it in (on error the
// old configuration stays active); Run works until ctx is done; Status is
// safe to call at any time from any goroutine.
type Module interface {
	Name() string
	Configure(ctx context.Context, spec ModuleSpec) error
	Run(ctx context.Context, emit func(event.Event)) error
	Status() ModuleStatus
}

// ErrUnavailable marks "not possible on this host" (no root, no nftables,
// no fanotify): a state to report, not a failure to restart. Wrap it with the
// reason: fmt.Errorf("%w: fanotify needs CAP_SYS_ADMIN", agent.ErrUnavailable).
var ErrUnavailable = errors.New("unavailable")

// Unavailable returns an ErrUnavailable wrapping reason.
func Unavailable(reason string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnavailable, fmt.Sprintf(reason, args...))
}

// ModuleSpec is a module's part of the effective policy.
type ModuleSpec struct {
	Enabled bool `json:"enabled"`
	// Settings is the module's own section of the policy. Each module decodes
	// it strictly (unknown fields are errors) into its engine's config.
	Settings json.RawMessage `json:"settings,omitempty"`
	// RuleFiles are the paths, on local disk, of the verified rule-pack files
	// assigned to this module (signatures, Sigma rules, FIM policies …).
	RuleFiles []string `json:"rule_files,omitempty"`
	// Budget caps the module's heavy work (scans).
	Budget Budget `json:"budget"`
	// PolicyVersion is the effective policy's version, for events and status.
	PolicyVersion string `json:"policy_version,omitempty"`
}

// Budget is the resource budget for scans: a CPU share and idle I/O class.
type Budget struct {
	CPUPercent int  `json:"cpu_percent,omitempty"` // 0 = no cap; 1–100 of one core times cores
	IdleIO     bool `json:"idle_io,omitempty"`
}

// State is a module's lifecycle state.
type State string

const (
	StateDisabled    State = "disabled"
	StateStarting    State = "starting"
	StateRunning     State = "running"
	StateFailed      State = "failed"      // error, being restarted with back-off
	StateUnavailable State = "unavailable" // cannot run on this host; Reason says why
	StateStopped     State = "stopped"
)

// ModuleStatus is what `mamori agent status` and the manager show.
type ModuleStatus struct {
	Name      string           `json:"name"`
	State     State            `json:"state"`
	Reason    string           `json:"reason,omitempty"` // for unavailable / failed
	Mode      string           `json:"mode,omitempty"`   // e.g. "fanotify", "inotify (weaker)"
	RuleCount int              `json:"rule_count"`
	LastError string           `json:"last_error,omitempty"`
	Since     time.Time        `json:"since"`
	Counters  map[string]int64 `json:"counters,omitempty"`
}

// Env is what the agent hands a module when it builds it.
type Env struct {
	Logger   *slog.Logger // already With("module", name)
	DataDir  string       // the module's own persistent directory
	Hostname string
	Root     string           // filesystem root, "/" except in tests
	Blocker  response.Blocker // active response (the firewall module)
	// Throttle, when set, is called by scanning loops between files so the
	// agent can keep the module within its Budget. It returns at once when no
	// throttling is needed.
	Throttle func(ctx context.Context) error
}
