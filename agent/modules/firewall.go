package modules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/firewall"
	"github.com/mamori-sec/mamori/firewall/nft"
	"github.com/mamori-sec/mamori/firewall/policy"
	"github.com/mamori-sec/mamori/response"
)

// firewallSettings is the firewall module's policy section.
type firewallSettings struct {
	Policy *policy.Policy `json:"policy"`
	// Management are the manager's endpoints ("host:port" with an IP);
	// they stay reachable unless the policy sets management_override.
	Management []string `json:"management,omitempty"`
	// BlockList is the manager's global block list: addresses and CIDRs
	// blocked until the list drops them.
	BlockList []string `json:"block_list,omitempty"`
	// PollSeconds and DropReportSeconds tune drift/scan checks and drop
	// event aggregation.
	PollSeconds       int `json:"poll_seconds,omitempty"`
	DropReportSeconds int `json:"drop_report_seconds,omitempty"`
}

// firewallModule adapts the firewall engine to the agent. It is also the
// agent's response.Blocker: detections in other modules block through it.
type firewallModule struct {
	env     agent.Env
	netnsFD int // -1: the host's namespace; tests use a throwaway one

	mu      sync.Mutex
	fw      *firewall.Firewall
	st      agent.ModuleStatus
	listed  map[netip.Prefix]bool // the manager block list in force
	running bool
	applied []byte // settings last applied, to skip re-compiling big policies
}

var (
	_ agent.Module     = (*firewallModule)(nil)
	_ response.Blocker = (*firewallModule)(nil)
)

func newFirewall(env agent.Env) agent.Module {
	return &firewallModule{env: env, netnsFD: -1, st: agent.ModuleStatus{Name: "firewall", State: agent.StateStopped, Since: time.Now()}}
}

func (m *firewallModule) Name() string { return "firewall" }

func (m *firewallModule) setState(s agent.State, reason string) {
	if m.st.State != s {
		m.st.Since = time.Now()
	}
	m.st.State, m.st.Reason = s, reason
}

func decodeFirewallSettings(raw json.RawMessage) (*firewallSettings, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("firewall settings: missing (need at least a policy)")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s firewallSettings
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding firewall settings: %w", err)
	}
	if s.Policy == nil {
		return nil, errors.New("firewall settings: policy: missing")
	}
	return &s, nil
}

// Configure validates the whole section first and touches the kernel only
// when everything is valid; on error the previous policy stays in force.
func (m *firewallModule) Configure(ctx context.Context, spec agent.ModuleSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !spec.Enabled {
		m.applied = nil
		m.setState(agent.StateDisabled, "")
		if m.fw != nil {
			// A disabled firewall module takes its rules away but keeps
			// the block sets: detections may still block.
			if err := m.fw.RemovePolicy(); err != nil {
				return fmt.Errorf("removing firewall policy: %w", err)
			}
			m.fw.ReleaseAgent() // the CLI may manage the firewall now
		}
		return nil
	}
	// The manager re-sends unchanged sections; compiling a 10,000-rule
	// policy costs far more than proving the kernel still holds it.
	if m.fw != nil && m.applied != nil && bytes.Equal(spec.Settings, m.applied) && m.fw.InForce() {
		return nil
	}
	s, err := decodeFirewallSettings(spec.Settings)
	if err != nil {
		m.st.LastError = err.Error()
		return err
	}
	var mgmt []netip.AddrPort
	for i, a := range s.Management {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return fmt.Errorf("firewall settings: management[%d]: %q is not IP:port", i, a)
		}
		mgmt = append(mgmt, ap)
	}
	list := map[netip.Prefix]bool{}
	for i, a := range s.BlockList {
		p, err := parseBlockEntry(a)
		if err != nil {
			return fmt.Errorf("firewall settings: block_list[%d]: %w", i, err)
		}
		list[p] = true
	}
	c, warns, err := policy.Compile(s.Policy, policy.Options{Management: mgmt})
	if err != nil {
		m.st.LastError = err.Error()
		return fmt.Errorf("firewall policy: %w", err)
	}
	for _, w := range warns {
		m.env.Logger.Warn("firewall policy", "warning", w.Message)
	}
	if m.fw == nil {
		fw, err := firewall.Open(firewall.Options{
			NetNS: m.netnsFD, Hostname: m.env.Hostname, Management: mgmt, Logger: m.env.Logger,
			Poll: time.Duration(s.PollSeconds) * time.Second, DropEvery: time.Duration(s.DropReportSeconds) * time.Second,
		})
		if err != nil {
			m.setState(agent.StateUnavailable, err.Error())
			if errors.Is(err, firewall.ErrUnavailable) {
				return agent.Unavailable("%v", err)
			}
			return err
		}
		m.fw = fw
	}
	if _, err := m.fw.ApplyCompiled(ctx, c); err != nil {
		m.st.LastError = err.Error()
		return err
	}
	// The claim makes `mamori firewall apply` refuse to fight this
	// module over the table (unless --force).
	if err := m.fw.ClaimForAgent(); err != nil {
		m.env.Logger.Warn("firewall: claiming the table for the agent", "err", err)
	}
	if err := m.syncBlockList(ctx, list); err != nil {
		m.st.LastError = err.Error()
		return err
	}
	m.applied = bytes.Clone(spec.Settings)
	m.st.RuleCount = len(c.Rules)
	m.st.LastError = ""
	m.st.Mode = "nftables (inet " + nft.TableName + ")"
	if m.running {
		m.setState(agent.StateRunning, "")
	} else {
		m.setState(agent.StateStarting, "")
	}
	return nil
}

func parseBlockEntry(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// syncBlockList adds the new entries of the manager's list in one batch and
// removes the ones it dropped.
func (m *firewallModule) syncBlockList(ctx context.Context, list map[netip.Prefix]bool) error {
	var add []nft.BlockEntry
	for p := range list {
		if !m.listed[p] {
			add = append(add, nft.BlockEntry{Prefix: p})
		}
	}
	if err := m.fw.BlockMany(add); err != nil {
		return err
	}
	for p := range m.listed {
		if !list[p] {
			if err := m.fw.Unblock(ctx, p); err != nil {
				m.env.Logger.Warn("removing from the block list", "prefix", p, "err", err)
			}
		}
	}
	m.listed = list
	return nil
}

func (m *firewallModule) Run(ctx context.Context, emit func(event.Event)) error {
	m.mu.Lock()
	fw := m.fw
	if fw == nil {
		reason := m.st.Reason
		m.mu.Unlock()
		if reason == "" {
			reason = "not configured"
		}
		return agent.Unavailable("%s", reason)
	}
	m.running = true
	m.setState(agent.StateRunning, "")
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.setState(agent.StateStopped, "")
		m.mu.Unlock()
	}()
	return fw.Run(ctx, func(ev event.Event) {
		m.mu.Lock()
		if m.st.Counters == nil {
			m.st.Counters = map[string]int64{}
		}
		m.st.Counters[string(ev.Kind)]++
		if ev.Kind == event.KindFirewallDrift {
			// A deleted table took the manager's block list with it.
			list := m.listed
			m.listed = nil
			if err := m.syncBlockList(ctx, list); err != nil {
				m.st.LastError = err.Error()
			}
		}
		m.mu.Unlock()
		emit(ev)
	})
}

func (m *firewallModule) Status() agent.ModuleStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	if st.Counters != nil || m.fw != nil {
		st.Counters = make(map[string]int64, len(m.st.Counters)+1)
		for k, v := range m.st.Counters {
			st.Counters[k] = v
		}
	}
	if m.fw != nil {
		// Every failed block request, also those past the event bound
		// of a storm: the metric an operator alerts on.
		st.Counters["block_failures"] = int64(m.fw.BlockFailures())
	}
	return st
}

// Block carries out another module's block request.
func (m *firewallModule) Block(ctx context.Context, b response.Block) error {
	m.mu.Lock()
	fw := m.fw
	m.mu.Unlock()
	if fw == nil {
		return agent.Unavailable("firewall module not running")
	}
	return fw.Block(ctx, b)
}

func (m *firewallModule) Unblock(ctx context.Context, p netip.Prefix) error {
	m.mu.Lock()
	fw := m.fw
	m.mu.Unlock()
	if fw == nil {
		return agent.Unavailable("firewall module not running")
	}
	return fw.Unblock(ctx, p)
}
