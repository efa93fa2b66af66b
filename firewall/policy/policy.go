package policy

import (
	"encoding/json"
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Policy is one host's firewall policy, as the manager sends it (JSON) or an
// operator writes it (YAML).
type Policy struct {
	// Defaults is the verdict for traffic no rule decides, per direction.
	Defaults Defaults `json:"defaults" yaml:"defaults"`
	// Stateful accepts packets of established and related connections before
	// the rules run, so rules describe only new connections. Nil means true.
	Stateful *bool `json:"stateful,omitempty" yaml:"stateful,omitempty"`
	// ManagementOverride drops the implicit force-allow of the management
	// channel to the manager. Only for operators who manage it themselves.
	ManagementOverride bool `json:"management_override,omitempty" yaml:"management_override,omitempty"`
	// Recon enables port-scan and host-sweep detection on inbound new
	// connections.
	Recon *Recon `json:"recon,omitempty" yaml:"recon,omitempty"`

	IPLists   map[string][]string  `json:"ip_lists,omitempty" yaml:"ip_lists,omitempty"`
	PortLists map[string][]PortRef `json:"port_lists,omitempty" yaml:"port_lists,omitempty"`
	Rules     []Rule               `json:"rules" yaml:"rules"`

	// yamlSrc is the YAML the policy came from, kept so that errors can
	// name the line of the rule (worked out only when there are errors).
	// Code that edits Rules after decoding should not rely on those lines.
	yamlSrc   []byte
	ruleLines []int
}

// Defaults holds the default verdict of each direction: "allow" or "deny".
type Defaults struct {
	In  Action `json:"in" yaml:"in"`
	Out Action `json:"out" yaml:"out"`
}

// Recon configures reconnaissance (port scan) detection.
type Recon struct {
	// Ports is how many distinct ports one source must touch within Window
	// to count as a scan. Default 15.
	Ports int `json:"ports,omitempty" yaml:"ports,omitempty"`
	// Hosts is how many distinct addresses of this host one source must
	// probe on the same port (or ping) within Window to count as a host
	// sweep. Default 5.
	Hosts int `json:"hosts,omitempty" yaml:"hosts,omitempty"`
	// Window is how long a (source, port) observation is remembered, e.g.
	// "60s". Default 60s.
	Window string `json:"window,omitempty" yaml:"window,omitempty"`
	// Block, when set, blocks a detected scanner for this long, e.g. "10m".
	Block string `json:"block,omitempty" yaml:"block,omitempty"`
}

// Rule is one ordered rule. Empty match fields match anything.
type Rule struct {
	Name      string    `json:"name,omitempty" yaml:"name,omitempty"`
	Action    Action    `json:"action" yaml:"action"`
	Direction Direction `json:"direction" yaml:"direction"`
	Protocol  Protocol  `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	// Src and Dst hold CIDRs, single addresses, or "@list" references.
	Src []string `json:"src,omitempty" yaml:"src,omitempty"`
	Dst []string `json:"dst,omitempty" yaml:"dst,omitempty"`
	// SrcPorts and DstPorts hold ports, "lo-hi" ranges or "@list" references.
	SrcPorts []PortRef `json:"src_ports,omitempty" yaml:"src_ports,omitempty"`
	DstPorts []PortRef `json:"dst_ports,omitempty" yaml:"dst_ports,omitempty"`
	// Interface is the input interface for direction in, the output
	// interface for direction out.
	Interface string `json:"interface,omitempty" yaml:"interface,omitempty"`
	// State restricts the connection-tracking state: new, established,
	// related, invalid.
	State []string `json:"state,omitempty" yaml:"state,omitempty"`
	// Log logs matches to the kernel log, at most LogRate ("10/minute").
	Log     bool   `json:"log,omitempty" yaml:"log,omitempty"`
	LogRate string `json:"log_rate,omitempty" yaml:"log_rate,omitempty"`
	Comment string `json:"comment,omitempty" yaml:"comment,omitempty"`
}

// Action is what a rule does with a match.
type Action string

const (
	ActionAllow Action = "allow"
	ActionDeny  Action = "deny"
	// ActionLogOnly counts and logs, then lets later rules decide.
	ActionLogOnly Action = "log-only"
	// ActionForceAllow accepts before any deny, block set or ordinary rule
	// is evaluated: the commercial suites' "force allow" / "bypass".
	ActionForceAllow Action = "force-allow"
)

// Direction is in (to this host) or out (from it).
type Direction string

const (
	DirIn  Direction = "in"
	DirOut Direction = "out"
)

// Protocol is the layer-4 protocol a rule matches.
type Protocol string

const (
	ProtoAny    Protocol = "any"
	ProtoTCP    Protocol = "tcp"
	ProtoUDP    Protocol = "udp"
	ProtoICMP   Protocol = "icmp"
	ProtoICMPv6 Protocol = "icmpv6"
)

// PortRef is a port ("22"), a range ("8000-8080") or a list reference
// ("@web"). It decodes from a number or a string.
type PortRef string

func (p *PortRef) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*p = PortRef(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("port must be a number or a string, got %s", b)
	}
	*p = PortRef(s)
	return nil
}

func (p *PortRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: port must be a number or a string", n.Line)
	}
	*p = PortRef(n.Value)
	return nil
}

// MarshalJSON writes plain ports as numbers, the form people write.
func (p PortRef) MarshalJSON() ([]byte, error) {
	if n, err := strconv.Atoi(string(p)); err == nil {
		return []byte(strconv.Itoa(n)), nil
	}
	return json.Marshal(string(p))
}
