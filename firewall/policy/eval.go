package policy

import (
	"fmt"
	"net/netip"
)

// Conn describes a connection (its first packet) for Evaluate.
type Conn struct {
	Direction Direction
	Protocol  Protocol // tcp, udp, icmp, icmpv6
	Src, Dst  netip.Addr
	SrcPort   uint16
	DstPort   uint16
	Interface string
	State     CtState // 0 means new
}

// Decision is Evaluate's answer.
type Decision struct {
	Allowed bool
	// Rule is the deciding rule; nil when the default policy or the
	// stateful established/related acceptance decided.
	Rule   *CRule
	Reason string
	// Logged are the log-only rules the connection passed on the way.
	Logged []*CRule
}

// Evaluate answers "would this connection be allowed, by which rule" with
// the same order the kernel ruleset uses: force-allow rules, then the
// stateful acceptance of established and related packets, then the rules in
// order, then the default. Block sets are runtime state and not consulted.
func (c *Compiled) Evaluate(k Conn) Decision {
	if k.State == 0 {
		k.State = CtNew
	}
	k.Src, k.Dst = k.Src.Unmap(), k.Dst.Unmap()
	var d Decision
	rules := c.Ordered(k.Direction)
	i := 0
	for ; i < len(rules) && rules[i].Action == ActionForceAllow; i++ {
		if rules[i].matches(&k) {
			return Decision{Allowed: true, Rule: rules[i], Reason: rules[i].Label() + " force-allows it"}
		}
	}
	if c.Stateful && k.State&(CtEstablished|CtRelated) != 0 {
		return Decision{Allowed: true, Reason: "stateful: established/related traffic is accepted"}
	}
	for ; i < len(rules); i++ {
		r := rules[i]
		if !r.matches(&k) {
			continue
		}
		switch r.Action {
		case ActionLogOnly:
			d.Logged = append(d.Logged, r)
		case ActionAllow:
			d.Allowed, d.Rule, d.Reason = true, r, r.Label()+" allows it"
			return d
		case ActionDeny:
			d.Rule, d.Reason = r, r.Label()+" denies it"
			return d
		}
	}
	def := c.DefaultIn
	if k.Direction == DirOut {
		def = c.DefaultOut
	}
	d.Allowed = def == ActionAllow
	d.Reason = fmt.Sprintf("no rule matched: default %s policy is %s", k.Direction, def)
	return d
}

func (r *CRule) matches(k *Conn) bool {
	if k.Src.Is4() && !r.V4 || k.Src.Is6() && !r.V6 {
		return false
	}
	if r.Protocol != ProtoAny && r.Protocol != k.Protocol {
		return false
	}
	if r.Interface != "" && r.Interface != k.Interface {
		return false
	}
	if r.State != 0 && r.State&k.State == 0 {
		return false
	}
	return addrMatches(r.Src, k.Src) && addrMatches(r.Dst, k.Dst) &&
		portMatches(r.SrcPorts, k.SrcPort) && portMatches(r.DstPorts, k.DstPort)
}

func addrMatches(m *AddrMatch, a netip.Addr) bool {
	if m == nil {
		return true
	}
	ps := m.V6
	if a.Is4() {
		ps = m.V4
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func portMatches(m *PortMatch, p uint16) bool {
	if m == nil {
		return true
	}
	for _, r := range m.Ranges {
		if r.Lo <= p && p <= r.Hi {
			return true
		}
	}
	return false
}
