package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// TableName is mamori's own table; other tools' tables are never touched.
const TableName = "mamori"

// Names of the sets that outlive a policy change: the active-response block
// sets and the reconnaissance sets the kernel fills.
const (
	SetBlock4 = "block4"
	SetBlock6 = "block6"
	SetRecon4 = "recon4"
	SetRecon6 = "recon6"
)

// commentPrefix starts every rule comment we write; a rule without it was
// put there by someone else.
const commentPrefix = "mamori:"

// KeyKind is a set's element type.
type KeyKind int

const (
	KeyIPv4 KeyKind = iota
	KeyIPv6
	KeyPort
	// KeyRecon4 is ipv4_addr . ipv4_addr . inet_proto . tcp_flag .
	// inet_service: source, destination, protocol, TCP flags (0 for
	// others), port (0 for ICMP). The destination shows sweeps across this
	// host's addresses, the flags the kind of TCP scan.
	KeyRecon4
	KeyRecon6
)

// ReconKind says which probe key a recon rule records.
type ReconKind int

const (
	ReconNone ReconKind = iota
	ReconTCP            // with the packet's TCP flags
	ReconUDP
	ReconICMP // echo requests: ping sweeps
)

// Set is a named set in the table.
type Set struct {
	Name     string
	Key      KeyKind
	Interval bool
	Timeout  bool          // elements may carry timeouts
	Dynamic  bool          // filled by the packet path
	Default  time.Duration // default element timeout
	Size     uint32
	Prefixes []netip.Prefix
	Ranges   []policy.Range
}

// Persistent reports whether the set keeps its elements across policy
// changes (block and recon sets).
func (s *Set) Persistent() bool {
	switch s.Name {
	case SetBlock4, SetBlock6, SetRecon4, SetRecon6:
		return true
	}
	return false
}

// Rule is one kernel rule.
type Rule struct {
	Matches []Match
	Recon   ReconKind // add (saddr, daddr, l4proto, flags, dport) of the packet to the recon set
	Counter bool
	Log     *LogSpec
	Verdict string // "accept", "drop" or "" (continue)
	Tag     string // "r3 ssh", "block", "stateful" …; ends up in the comment
}

// LogSpec is a rate-limited log statement.
type LogSpec struct {
	Rate   policy.Rate
	Prefix string
}

// Chain is a base chain.
type Chain struct {
	Name   string
	Out    bool // output hook instead of input
	Accept bool // default policy
	Rules  []Rule
}

// Plan is the complete content of the mamori table for one policy.
type Plan struct {
	Fingerprint string
	Sets        []Set
	Chains      []Chain
}

// Comment is the comment the rule carries in this plan.
func (p *Plan) Comment(r *Rule) string {
	return commentPrefix + p.Fingerprint + " " + r.Tag
}

// BlockOnly is the plan used when addresses are blocked before any policy
// was applied: accept-all chains that only drop blocked addresses.
func BlockOnly() *Plan {
	return Build(&policy.Compiled{DefaultIn: policy.ActionAllow, DefaultOut: policy.ActionAllow})
}

// Build renders a compiled policy into a plan.
func Build(c *policy.Compiled) *Plan {
	b := &builder{p: &Plan{}, c: c}
	b.p.Sets = append(b.p.Sets,
		Set{Name: SetBlock4, Key: KeyIPv4, Interval: true, Timeout: true},
		Set{Name: SetBlock6, Key: KeyIPv6, Interval: true, Timeout: true})
	if c.Recon != nil {
		b.p.Sets = append(b.p.Sets,
			Set{Name: SetRecon4, Key: KeyRecon4, Timeout: true, Dynamic: true, Default: c.Recon.Window, Size: 65535},
			Set{Name: SetRecon6, Key: KeyRecon6, Timeout: true, Dynamic: true, Default: c.Recon.Window, Size: 65535})
	}
	for _, name := range sortedNames(c.IPLists) {
		l := c.IPLists[name]
		if len(l.V4) > 0 {
			b.p.Sets = append(b.p.Sets, Set{Name: listSet(name, false), Key: KeyIPv4, Interval: true, Prefixes: l.V4})
		}
		if len(l.V6) > 0 {
			b.p.Sets = append(b.p.Sets, Set{Name: listSet(name, true), Key: KeyIPv6, Interval: true, Prefixes: l.V6})
		}
	}
	for _, name := range sortedNames(c.PortLists) {
		b.p.Sets = append(b.p.Sets, Set{Name: "p_" + name, Key: KeyPort, Interval: true, Ranges: c.PortLists[name]})
	}
	for _, dir := range []policy.Direction{policy.DirIn, policy.DirOut} {
		b.chain(dir)
	}
	// The fingerprint hashes the rendered ruleset, not the policy: a newer
	// mamori that renders the same policy differently must not take the old
	// kernel state for current.
	sum := sha256.Sum256([]byte(b.p.Text()))
	b.p.Fingerprint = hex.EncodeToString(sum[:6])
	return b.p
}

func listSet(name string, v6 bool) string {
	if v6 {
		return "l_" + name + "_6"
	}
	return "l_" + name + "_4"
}

type builder struct {
	p *Plan
	c *policy.Compiled
}

func (b *builder) chain(dir policy.Direction) {
	out := dir == policy.DirOut
	ch := Chain{Name: "input", Out: out, Accept: b.c.DefaultIn == policy.ActionAllow}
	if out {
		ch.Name, ch.Accept = "output", b.c.DefaultOut == policy.ActionAllow
	}
	rules := b.c.Ordered(dir)
	i := 0
	for ; i < len(rules) && rules[i].Action == policy.ActionForceAllow; i++ {
		ch.Rules = append(ch.Rules, b.rules(rules[i])...)
	}
	// Blocks come after force-allow (which bypasses everything, as its name
	// promises) and before the stateful acceptance, so a block also cuts
	// connections that were already open.
	ch.Rules = append(ch.Rules,
		Rule{Matches: []Match{NfProto{}, Addr{Dst: out, Set: SetBlock4}}, Counter: true, Verdict: "drop", Tag: "block"},
		Rule{Matches: []Match{NfProto{V6: true}, Addr{Dst: out, V6: true, Set: SetBlock6}}, Counter: true, Verdict: "drop", Tag: "block"})
	// Neighbor discovery (router solicitation/advertisement, neighbor
	// solicitation/advertisement) is IPv6's ARP: a default-deny policy that
	// drops it silently breaks all IPv6, so it is always accepted, as ufw
	// and firewalld do.
	ch.Rules = append(ch.Rules, Rule{Matches: []Match{ICMPv6Type{Lo: 133, Hi: 136}}, Counter: true, Verdict: "accept", Tag: "icmpv6-nd"})
	if b.c.Stateful {
		ch.Rules = append(ch.Rules, Rule{Matches: []Match{CtState{State: policy.CtEstablished | policy.CtRelated}}, Counter: true, Verdict: "accept", Tag: "stateful"})
	}
	if b.c.Recon != nil && !out {
		for _, v6 := range []bool{false, true} {
			// Invalid TCP packets count too: stealth scans (null, FIN, Xmas)
			// are invalid to conntrack, not new.
			ch.Rules = append(ch.Rules,
				Rule{Matches: []Match{ExplicitNfProto{V6: v6}, CtState{State: policy.CtNew | policy.CtInvalid}, L4Proto{Proto: policy.ProtoTCP}}, Recon: ReconTCP, Tag: "recon"},
				Rule{Matches: []Match{ExplicitNfProto{V6: v6}, CtState{State: policy.CtNew}, L4Proto{Proto: policy.ProtoUDP}}, Recon: ReconUDP, Tag: "recon"},
				Rule{Matches: []Match{ExplicitNfProto{V6: v6}, CtState{State: policy.CtNew}, ICMPEcho{V6: v6}}, Recon: ReconICMP, Tag: "recon"})
		}
	}
	for ; i < len(rules); i++ {
		ch.Rules = append(ch.Rules, b.rules(rules[i])...)
	}
	ch.Rules = append(ch.Rules, Rule{Counter: true, Tag: "default"})
	b.p.Chains = append(b.p.Chains, ch)
}

// rules renders one policy rule: one kernel rule per address family when
// addresses are involved, plus a rate-limited log rule in front when the
// rule logs (a limit in the verdict rule would also limit the verdict).
func (b *builder) rules(r *policy.CRule) []Rule {
	tag := "r" + strconv.Itoa(r.Index)
	if r.Name != "" {
		tag += " " + r.Name
	}
	var fams []*bool
	if r.Src != nil || r.Dst != nil {
		if r.V4 {
			fams = append(fams, new(bool))
		}
		if r.V6 {
			v6 := true
			fams = append(fams, &v6)
		}
	} else {
		fams = []*bool{nil}
	}
	var out []Rule
	for _, fam := range fams {
		m := b.matches(r, fam, len(fams) > 1)
		if r.Log {
			verb := map[policy.Action]string{policy.ActionAllow: "ACCEPT", policy.ActionForceAllow: "ACCEPT", policy.ActionDeny: "DROP", policy.ActionLogOnly: "LOG"}[r.Action]
			out = append(out, Rule{Matches: m, Log: &LogSpec{Rate: r.LogRate, Prefix: fmt.Sprintf("mamori %s %s: ", strings.Fields(tag)[0], verb)}, Tag: tag + " log"})
		}
		rule := Rule{Matches: m, Counter: true, Tag: tag}
		switch r.Action {
		case policy.ActionAllow, policy.ActionForceAllow:
			rule.Verdict = "accept"
		case policy.ActionDeny:
			rule.Verdict = "drop"
		}
		out = append(out, rule)
	}
	return out
}

func (b *builder) matches(r *policy.CRule, fam *bool, split bool) []Match {
	var m []Match
	if r.Interface != "" {
		m = append(m, Iface{Out: r.Direction == policy.DirOut, Name: r.Interface})
	}
	if fam != nil {
		m = append(m, NfProto{V6: *fam})
		for _, f := range []struct {
			dst bool
			am  *policy.AddrMatch
			fld string
		}{{false, r.Src, "src"}, {true, r.Dst, "dst"}} {
			if f.am == nil {
				continue
			}
			ps := f.am.V4
			suffix := "_4"
			if *fam {
				ps, suffix = f.am.V6, "_6"
			}
			a := Addr{Dst: f.dst, V6: *fam}
			switch {
			case f.am.List != "":
				a.Set = listSet(f.am.List, *fam)
			case len(ps) == 1:
				a.Prefix = ps[0]
			default:
				a.Set = fmt.Sprintf("r%d_%s%s", r.Index, f.fld, suffix)
				if !b.hasSet(a.Set) {
					key := KeyIPv4
					if *fam {
						key = KeyIPv6
					}
					b.p.Sets = append(b.p.Sets, Set{Name: a.Set, Key: key, Interval: true, Prefixes: ps})
				}
			}
			m = append(m, a)
		}
	}
	if r.Protocol != policy.ProtoAny {
		m = append(m, L4Proto{Proto: r.Protocol})
	}
	for _, f := range []struct {
		dst bool
		pm  *policy.PortMatch
		fld string
	}{{false, r.SrcPorts, "sport"}, {true, r.DstPorts, "dport"}} {
		if f.pm == nil {
			continue
		}
		p := Port{Proto: r.Protocol, Dst: f.dst}
		switch {
		case f.pm.List != "":
			p.Set = "p_" + f.pm.List
		case len(f.pm.Ranges) == 1:
			p.Range = f.pm.Ranges[0]
		default:
			p.Set = fmt.Sprintf("r%d_%s", r.Index, f.fld)
			if !b.hasSet(p.Set) {
				b.p.Sets = append(b.p.Sets, Set{Name: p.Set, Key: KeyPort, Interval: true, Ranges: f.pm.Ranges})
			}
		}
		m = append(m, p)
	}
	if r.State != 0 {
		m = append(m, CtState{State: r.State})
	}
	return m
}

func (b *builder) hasSet(name string) bool {
	for _, s := range b.p.Sets {
		if s.Name == name {
			return true
		}
	}
	return false
}

func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
