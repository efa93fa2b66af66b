package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Compiled is a validated policy with every reference resolved, ready for a
// backend to render or for Evaluate to answer questions.
type Compiled struct {
	DefaultIn  Action             `json:"default_in"`
	DefaultOut Action             `json:"default_out"`
	Stateful   bool               `json:"stateful"`
	Recon      *ReconConfig       `json:"recon,omitempty"`
	IPLists    map[string]AddrSet `json:"ip_lists,omitempty"`
	PortLists  map[string][]Range `json:"port_lists,omitempty"`
	// Rules are in evaluation order as written; backends put force-allow
	// rules first (see Ordered).
	Rules []CRule `json:"rules"`
	// Fingerprint identifies the compiled policy: equal fingerprints mean
	// equal kernel state, which is what makes re-applying a no-op.
	Fingerprint string `json:"-"`
}

// ReconConfig is Recon with defaults filled in and durations parsed.
type ReconConfig struct {
	Ports  int           `json:"ports"`
	Hosts  int           `json:"hosts"`
	Window time.Duration `json:"window"`
	Block  time.Duration `json:"block,omitempty"`
}

// AddrSet holds prefixes split by family, each sorted.
type AddrSet struct {
	V4 []netip.Prefix `json:"v4,omitempty"`
	V6 []netip.Prefix `json:"v6,omitempty"`
}

// AddrMatch is a compiled src or dst field. List is set when the field is
// exactly one "@list" reference, so a backend can share the list's set.
type AddrMatch struct {
	List string `json:"list,omitempty"`
	AddrSet
}

// Range is an inclusive port range; a single port has Lo == Hi.
type Range struct{ Lo, Hi uint16 }

// PortMatch is a compiled port field; List as in AddrMatch.
type PortMatch struct {
	List   string  `json:"list,omitempty"`
	Ranges []Range `json:"ranges"`
}

// CtState is a bit set of connection-tracking states, with the kernel's
// bit values (NF_CT_STATE_*), so backends use it as is.
type CtState uint32

const (
	CtInvalid     CtState = 1
	CtEstablished CtState = 2
	CtRelated     CtState = 4
	CtNew         CtState = 8
)

var ctNames = []struct {
	name string
	bit  CtState
}{{"invalid", CtInvalid}, {"established", CtEstablished}, {"related", CtRelated}, {"new", CtNew}}

// Names lists the states in nft's order.
func (s CtState) Names() []string {
	var out []string
	for _, c := range ctNames {
		if s&c.bit != 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// Rate is a log rate limit.
type Rate struct {
	N    uint64 `json:"n"`
	Unit string `json:"unit"` // second, minute, hour, day
}

// CRule is a compiled rule.
type CRule struct {
	Index     int        `json:"index"` // 1-based position in the policy; 0 for implicit rules
	Name      string     `json:"name,omitempty"`
	Action    Action     `json:"action"`
	Direction Direction  `json:"direction"`
	Protocol  Protocol   `json:"protocol"`
	Src       *AddrMatch `json:"src,omitempty"`
	Dst       *AddrMatch `json:"dst,omitempty"`
	SrcPorts  *PortMatch `json:"src_ports,omitempty"`
	DstPorts  *PortMatch `json:"dst_ports,omitempty"`
	Interface string     `json:"interface,omitempty"`
	State     CtState    `json:"state,omitempty"`
	Log       bool       `json:"log,omitempty"`
	LogRate   Rate       `json:"log_rate,omitempty"`
	V4        bool       `json:"v4"` // the rule can match IPv4
	V6        bool       `json:"v6"` // the rule can match IPv6
	Line      int        `json:"-"`  // line in the YAML source, when known
}

// Label names the rule for messages: "rule 3 (ssh)".
func (r *CRule) Label() string {
	switch {
	case r.Index == 0:
		return "implicit rule (" + r.Name + ")"
	case r.Name != "" && r.Line > 0:
		return fmt.Sprintf("rule %d (%s, line %d)", r.Index, r.Name, r.Line)
	case r.Name != "":
		return fmt.Sprintf("rule %d (%s)", r.Index, r.Name)
	case r.Line > 0:
		return fmt.Sprintf("rule %d (line %d)", r.Index, r.Line)
	default:
		return fmt.Sprintf("rule %d", r.Index)
	}
}

// Ordered returns the rules of one direction in evaluation order:
// force-allow rules first, then the others, each group in policy order.
func (c *Compiled) Ordered(d Direction) []*CRule {
	var force, rest []*CRule
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Direction != d {
			continue
		}
		if r.Action == ActionForceAllow {
			force = append(force, r)
		} else {
			rest = append(rest, r)
		}
	}
	return append(force, rest...)
}

// Options carries what the host knows and the policy cannot.
type Options struct {
	// Management are the manager's endpoints; unless the policy overrides,
	// they get implicit force-allow rules so a policy cannot cut the agent
	// off from its manager.
	Management []netip.AddrPort
}

// Warning is a non-fatal finding, such as a shadowed rule.
type Warning struct {
	Rules   []int // the rule numbers involved
	Message string
}

func (w Warning) String() string { return w.Message }

var listName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,30}$`)

// Compile validates p and resolves its references. The error joins one
// error per problem, each naming the rule and field. A firewall policy is
// all or nothing: a half-applied policy can lock out an operator or leave a
// hole, so any error rejects the whole policy.
func Compile(p *Policy, opt Options) (*Compiled, []Warning, error) {
	c, warns, err := compile(p, opt)
	if err != nil && p.yamlSrc != nil && p.ruleLines == nil {
		// Only now is it worth parsing the YAML again for line numbers.
		p.ruleLines = ruleLines(p.yamlSrc)
		c, warns, err = compile(p, opt)
	}
	return c, warns, err
}

func compile(p *Policy, opt Options) (*Compiled, []Warning, error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	c := &Compiled{Stateful: p.Stateful == nil || *p.Stateful, IPLists: map[string]AddrSet{}, PortLists: map[string][]Range{}}

	for _, d := range []struct {
		field string
		in    Action
		out   *Action
	}{{"defaults.in", p.Defaults.In, &c.DefaultIn}, {"defaults.out", p.Defaults.Out, &c.DefaultOut}} {
		switch d.in {
		case ActionAllow, ActionDeny:
			*d.out = d.in
		case "":
			fail("%s: missing (want allow or deny)", d.field)
		default:
			fail("%s: %q is not allow or deny", d.field, d.in)
		}
	}
	if p.Recon != nil {
		rc, err := compileRecon(p.Recon)
		if err != nil {
			fail("recon: %w", err)
		}
		c.Recon = rc
	}
	for _, name := range sortedKeys(p.IPLists) {
		if !listName.MatchString(name) {
			fail("ip_lists.%s: invalid list name (letters, digits, _; at most 31)", name)
			continue
		}
		var set AddrSet
		for i, s := range p.IPLists[name] {
			pfx, err := parsePrefix(s)
			if err != nil {
				fail("ip_lists.%s[%d]: %w", name, i, err)
				continue
			}
			set.add(pfx)
		}
		c.IPLists[name] = set.sorted()
	}
	for _, name := range sortedKeys(p.PortLists) {
		if !listName.MatchString(name) {
			fail("port_lists.%s: invalid list name (letters, digits, _; at most 31)", name)
			continue
		}
		var rs []Range
		for i, s := range p.PortLists[name] {
			r, err := parseRange(string(s))
			if err != nil {
				fail("port_lists.%s[%d]: %w", name, i, err)
				continue
			}
			rs = append(rs, r)
		}
		c.PortLists[name] = sortRanges(rs)
	}

	// Sized up front: growing a 10,000-rule slice copied it a dozen times.
	c.Rules = make([]CRule, 0, len(p.Rules)+2*len(opt.Management))
	if !p.ManagementOverride {
		for _, ap := range opt.Management {
			c.Rules = append(c.Rules, managementRules(ap)...)
		}
	}
	names := make(map[string]int, len(p.Rules))
	for i := range p.Rules {
		line := 0
		if i < len(p.ruleLines) {
			line = p.ruleLines[i]
		}
		r, err := c.compileRule(i+1, line, &p.Rules[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Name != "" {
			if prev, ok := names[r.Name]; ok {
				fail("%s: name: %q already used by rule %d", r.Label(), r.Name, prev)
				continue
			}
			names[r.Name] = r.Index
		}
		c.Rules = append(c.Rules, *r)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	// Fingerprinting (a JSON rendering of the whole policy) and lint only
	// read c: on a 10,000-rule policy they take long enough to be worth
	// running side by side.
	var fpErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		b, err := json.Marshal(c)
		if err != nil {
			fpErr = fmt.Errorf("fingerprinting policy: %w", err)
			return
		}
		sum := sha256.Sum256(b)
		c.Fingerprint = hex.EncodeToString(sum[:])
	})
	warns := c.lint(p)
	wg.Wait()
	if fpErr != nil {
		return nil, nil, fpErr
	}
	if p.ManagementOverride && len(opt.Management) > 0 {
		warns = append(warns, Warning{Message: "management_override: the management channel to the manager is not kept open; a wrong policy can cut this agent off"})
	}
	return c, warns, nil
}

func managementRules(ap netip.AddrPort) []CRule {
	pfx := netip.PrefixFrom(ap.Addr().Unmap(), ap.Addr().Unmap().BitLen())
	var set AddrSet
	set.add(pfx)
	port := &PortMatch{Ranges: []Range{{ap.Port(), ap.Port()}}}
	v4 := pfx.Addr().Is4()
	return []CRule{
		{Name: "mamori-management-out", Action: ActionForceAllow, Direction: DirOut, Protocol: ProtoTCP, Dst: &AddrMatch{AddrSet: set}, DstPorts: port, V4: v4, V6: !v4},
		{Name: "mamori-management-in", Action: ActionForceAllow, Direction: DirIn, Protocol: ProtoTCP, Src: &AddrMatch{AddrSet: set}, SrcPorts: port, V4: v4, V6: !v4},
	}
}

func compileRecon(r *Recon) (*ReconConfig, error) {
	rc := &ReconConfig{Ports: r.Ports, Window: 60 * time.Second}
	if rc.Ports == 0 {
		rc.Ports = 15
	}
	if rc.Ports < 2 || rc.Ports > 65535 {
		return nil, fmt.Errorf("ports: %d out of range 2-65535", r.Ports)
	}
	rc.Hosts = r.Hosts
	if rc.Hosts == 0 {
		rc.Hosts = 5
	}
	if rc.Hosts < 2 || rc.Hosts > 65535 {
		return nil, fmt.Errorf("hosts: %d out of range 2-65535", r.Hosts)
	}
	var err error
	if r.Window != "" {
		if rc.Window, err = time.ParseDuration(r.Window); err != nil || rc.Window < time.Second {
			return nil, fmt.Errorf("window: %q is not a duration of at least 1s", r.Window)
		}
	}
	if r.Block != "" {
		if rc.Block, err = time.ParseDuration(r.Block); err != nil || rc.Block < time.Second {
			return nil, fmt.Errorf("block: %q is not a duration of at least 1s", r.Block)
		}
	}
	return rc, nil
}

func (c *Compiled) compileRule(idx, line int, in *Rule) (*CRule, error) {
	r := &CRule{Index: idx, Line: line, Name: in.Name, Action: in.Action, Direction: in.Direction, Protocol: in.Protocol, Interface: in.Interface, Log: in.Log}
	var errs []error
	fail := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", r.Label(), field, fmt.Sprintf(format, a...)))
	}
	if len(in.Name) > 64 || strings.ContainsAny(in.Name, "\"\n\\") {
		fail("name", "at most 64 characters, no quotes, backslashes or newlines")
	}
	switch in.Action {
	case ActionAllow, ActionDeny, ActionLogOnly, ActionForceAllow:
	case "":
		fail("action", "missing (want allow, deny, log-only or force-allow)")
	default:
		fail("action", "%q is not allow, deny, log-only or force-allow", in.Action)
	}
	switch in.Direction {
	case DirIn, DirOut:
	case "":
		fail("direction", "missing (want in or out)")
	default:
		fail("direction", "%q is not in or out", in.Direction)
	}
	switch in.Protocol {
	case "":
		r.Protocol = ProtoAny
	case ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6:
	default:
		fail("protocol", "%q is not tcp, udp, icmp, icmpv6 or any", in.Protocol)
	}
	var err error
	if r.Src, err = c.addrMatch(in.Src); err != nil {
		fail("src", "%v", err)
	}
	if r.Dst, err = c.addrMatch(in.Dst); err != nil {
		fail("dst", "%v", err)
	}
	if r.SrcPorts, err = c.portMatch(in.SrcPorts); err != nil {
		fail("src_ports", "%v", err)
	}
	if r.DstPorts, err = c.portMatch(in.DstPorts); err != nil {
		fail("dst_ports", "%v", err)
	}
	if (r.SrcPorts != nil || r.DstPorts != nil) && r.Protocol != ProtoTCP && r.Protocol != ProtoUDP {
		fail("protocol", "ports need protocol tcp or udp, not %s", r.Protocol)
	}
	if in.Interface != "" && (len(in.Interface) > 15 || strings.ContainsAny(in.Interface, " \t\"*/\\")) {
		fail("interface", "%q is not an interface name (at most 15 characters, no wildcards)", in.Interface)
	}
	for _, s := range in.State {
		found := false
		for _, c := range ctNames {
			if strings.EqualFold(s, c.name) {
				r.State |= c.bit
				found = true
			}
		}
		if !found {
			fail("state", "%q is not new, established, related or invalid", s)
		}
	}
	if in.LogRate != "" {
		if !in.Log {
			fail("log_rate", "set but log is false")
		} else if r.LogRate, err = parseRate(in.LogRate); err != nil {
			fail("log_rate", "%v", err)
		}
	} else if in.Log {
		r.LogRate = Rate{N: 10, Unit: "minute"}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.V4 = r.Protocol != ProtoICMPv6 && hasFamily(r.Src, true) && hasFamily(r.Dst, true)
	r.V6 = r.Protocol != ProtoICMP && hasFamily(r.Src, false) && hasFamily(r.Dst, false)
	if !r.V4 && !r.V6 {
		return nil, fmt.Errorf("%s: src/dst: no address family left to match (IPv4 and IPv6 addresses mixed across src, dst and protocol)", r.Label())
	}
	return r, nil
}

func hasFamily(m *AddrMatch, v4 bool) bool {
	if m == nil {
		return true
	}
	if v4 {
		return len(m.V4) > 0
	}
	return len(m.V6) > 0
}

func (c *Compiled) addrMatch(in []string) (*AddrMatch, error) {
	if len(in) == 0 {
		return nil, nil
	}
	m := &AddrMatch{}
	var set AddrSet
	for i, s := range in {
		if name, ok := strings.CutPrefix(s, "@"); ok {
			l, ok := c.IPLists[name]
			if !ok {
				return nil, fmt.Errorf("[%d]: unknown ip list %q", i, name)
			}
			if len(in) == 1 {
				m.List = name
			}
			for _, p := range append(append([]netip.Prefix{}, l.V4...), l.V6...) {
				set.add(p)
			}
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		set.add(p)
	}
	m.AddrSet = set.sorted()
	if len(m.V4)+len(m.V6) == 0 {
		return nil, errors.New("the referenced lists are empty: the rule could never match")
	}
	return m, nil
}

func (c *Compiled) portMatch(in []PortRef) (*PortMatch, error) {
	if len(in) == 0 {
		return nil, nil
	}
	m := &PortMatch{}
	var rs []Range
	for i, s := range in {
		if name, ok := strings.CutPrefix(string(s), "@"); ok {
			l, ok := c.PortLists[name]
			if !ok {
				return nil, fmt.Errorf("[%d]: unknown port list %q", i, name)
			}
			if len(in) == 1 {
				m.List = name
			}
			rs = append(rs, l...)
			continue
		}
		r, err := parseRange(string(s))
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		rs = append(rs, r)
	}
	m.Ranges = sortRanges(rs)
	if len(m.Ranges) == 0 {
		return nil, errors.New("the referenced lists are empty: the rule could never match")
	}
	return m, nil
}

// parsePrefix accepts a CIDR or a single address and masks host bits away,
// as nft does; IPv4-mapped IPv6 addresses become IPv4.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zones are not allowed", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	l, err := parsePort(lo)
	if err != nil {
		return Range{}, err
	}
	if !isRange {
		return Range{l, l}, nil
	}
	h, err := parsePort(hi)
	if err != nil {
		return Range{}, err
	}
	if h < l {
		return Range{}, fmt.Errorf("reversed range %q (%d > %d)", s, l, h)
	}
	return Range{l, h}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return uint16(n), nil
}

func parseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(s, "/")
	v, err := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
	if !ok || err != nil || v == 0 {
		return Rate{}, fmt.Errorf("%q is not N/second, N/minute, N/hour or N/day", s)
	}
	switch unit = strings.TrimSpace(unit); unit {
	case "second", "minute", "hour", "day":
	default:
		return Rate{}, fmt.Errorf("%q is not N/second, N/minute, N/hour or N/day", s)
	}
	return Rate{N: v, Unit: unit}, nil
}

func (s *AddrSet) add(p netip.Prefix) {
	if p.Addr().Is4() {
		s.V4 = append(s.V4, p)
	} else {
		s.V6 = append(s.V6, p)
	}
}

// sorted sorts each family and drops prefixes covered by another, so that
// kernel interval sets never see overlapping elements.
func (s AddrSet) sorted() AddrSet {
	return AddrSet{V4: mergePrefixes(s.V4), V6: mergePrefixes(s.V6)}
}

func mergePrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
	out := []netip.Prefix{ps[0]}
	for _, p := range ps[1:] {
		last := out[len(out)-1]
		if last.Bits() <= p.Bits() && last.Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// sortRanges sorts and merges overlapping or adjacent ranges.
func sortRanges(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo < rs[j].Lo })
	out := []Range{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.Lo) <= uint32(last.Hi)+1 {
			if r.Hi > last.Hi {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
