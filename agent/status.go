package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
	"github.com/mamori-sec/mamori/api"
)

// StatusFile is where a running agent publishes its Status (JSON), for
// `mamori agent status`.
const StatusFile = "status.json"

// Status is a snapshot of the agent.
type Status struct {
	Time          time.Time         `json:"time"`
	PID           int               `json:"pid"`
	Version       string            `json:"version,omitempty"`
	ComputerID    string            `json:"computer_id"`
	ManagerURL    string            `json:"manager_url"`
	PolicyVersion string            `json:"policy_version,omitempty"`
	PolicyError   string            `json:"policy_error,omitempty"`
	RulePacks     []api.RulePackRef `json:"rulepacks,omitempty"`
	Modules       []ModuleStatus    `json:"modules"`
	QueueDepth    int64             `json:"queue_depth"`
	QueueBytes    int64             `json:"queue_bytes"`
	Dropped       int64             `json:"dropped"`
	LastContact   time.Time         `json:"last_contact,omitzero"`
	LinkError     string            `json:"link_error,omitempty"`
	ClockSkew     float64           `json:"clock_skew_seconds,omitempty"`
	CertExpiry    time.Time         `json:"cert_expiry,omitzero"`
}

// Status returns the agent's current state.
func (a *Agent) Status() Status {
	st := a.ob.Stats()
	a.mu.Lock()
	s := Status{
		Time: time.Now().UTC(), PID: os.Getpid(), Version: a.cfg.Version,
		ComputerID: a.id.ComputerID, ManagerURL: a.id.ManagerURL, PolicyError: a.policyErr,
		QueueDepth: st.Depth, QueueBytes: st.Bytes, Dropped: st.Dropped,
		LastContact: a.lastContact, LinkError: a.linkErr, ClockSkew: a.skew, CertExpiry: a.cl.CertificateExpiry(),
	}
	if a.policy != nil {
		s.PolicyVersion = a.policy.Version
	}
	for _, p := range a.packs {
		s.RulePacks = append(s.RulePacks, p.Ref)
	}
	a.mu.Unlock()
	for _, n := range a.names {
		s.Modules = append(s.Modules, a.runners[n].status())
	}
	return s
}

func (a *Agent) writeStatus() {
	b, err := json.MarshalIndent(a.Status(), "", "  ")
	if err != nil {
		return
	}
	if err := atomicfile.WriteVolatile(filepath.Join(a.cfg.DataDir, StatusFile), b, 0o600); err != nil {
		a.log.Debug("writing status file", "err", err)
	}
}

func (a *Agent) statusLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.StatusInterval)
	defer t.Stop()
	for {
		a.writeStatus()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReadStatus reads the status file a running agent writes.
func ReadStatus(dataDir string) (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(dataDir, StatusFile))
	if err != nil {
		return s, fmt.Errorf("reading agent status (is the agent running?): %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decoding %s: %w", filepath.Join(dataDir, StatusFile), err)
	}
	return s, nil
}
