package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Text renders the plan as an nft script that creates the same table:
// what `nft -f` would load to reach the state Apply reaches through
// netlink.
func (p *Plan) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i := range p.Sets {
		writeSet(&b, &p.Sets[i])
	}
	for _, ch := range p.Chains {
		hook, pol := "input", "drop"
		if ch.Out {
			hook = "output"
		}
		if ch.Accept {
			pol = "accept"
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy %s;\n", ch.Name, hook, pol)
		for i := range ch.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", p.RuleText(&ch.Rules[i]))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func writeSet(b *strings.Builder, s *Set) {
	typ := map[KeyKind]string{KeyIPv4: "ipv4_addr", KeyIPv6: "ipv6_addr", KeyPort: "inet_service",
		KeyRecon4: "ipv4_addr . ipv4_addr . inet_proto . tcp_flag . inet_service", KeyRecon6: "ipv6_addr . ipv6_addr . inet_proto . tcp_flag . inet_service"}[s.Key]
	fmt.Fprintf(b, "\tset %s {\n\t\ttype %s\n", s.Name, typ)
	if s.Size > 0 {
		fmt.Fprintf(b, "\t\tsize %d\n", s.Size)
	}
	var flags []string
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Interval {
		flags = append(flags, "interval")
	}
	if s.Timeout {
		flags = append(flags, "timeout")
	}
	if len(flags) > 0 {
		fmt.Fprintf(b, "\t\tflags %s\n", strings.Join(flags, ","))
	}
	if s.Default > 0 {
		fmt.Fprintf(b, "\t\ttimeout %s\n", nftDuration(s.Default))
	}
	var elems []string
	for _, p := range s.Prefixes {
		elems = append(elems, prefixText(p))
	}
	for _, r := range s.Ranges {
		if r.Lo == r.Hi {
			elems = append(elems, fmt.Sprint(r.Lo))
		} else {
			elems = append(elems, fmt.Sprintf("%d-%d", r.Lo, r.Hi))
		}
	}
	if len(elems) > 0 {
		fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n")
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// nftDuration writes a duration the way nft reads it ("1h2m3s").
func nftDuration(d time.Duration) string {
	var s string
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			s += fmt.Sprintf("%d%s", n, u.unit)
			d -= n * u.d
		}
	}
	if d >= time.Millisecond {
		s += fmt.Sprintf("%dms", d/time.Millisecond)
	}
	if s == "" {
		s = "0s"
	}
	return s
}

// RuleText renders one rule as nft statement text.
func (p *Plan) RuleText(r *Rule) string {
	var parts []string
	for i, m := range r.Matches {
		if _, ok := m.(L4Proto); ok && i+1 < len(r.Matches) {
			if _, isPort := r.Matches[i+1].(Port); isPort {
				continue // "tcp dport" implies it
			}
		}
		if t := m.Text(); t != "" {
			parts = append(parts, t)
		}
	}
	if r.Recon != ReconNone {
		fam := "ip"
		for _, m := range r.Matches {
			if n, ok := m.(ExplicitNfProto); ok && n.V6 {
				fam = "ip6"
			}
		}
		set := SetRecon4
		if fam == "ip6" {
			set = SetRecon6
		}
		flags, port := "0x0", "th dport"
		switch r.Recon {
		case ReconTCP:
			flags = "tcp flags"
		case ReconICMP:
			port = "0"
		}
		parts = append(parts, fmt.Sprintf("add @%s { %s saddr . %s daddr . meta l4proto . %s . %s }", set, fam, fam, flags, port))
	}
	if r.Log != nil {
		parts = append(parts, fmt.Sprintf("limit rate %d/%s burst 5 packets log prefix %q", r.Log.Rate.N, r.Log.Rate.Unit, r.Log.Prefix))
	}
	if r.Counter {
		parts = append(parts, "counter")
	}
	if r.Verdict != "" {
		parts = append(parts, r.Verdict)
	}
	parts = append(parts, fmt.Sprintf("comment %q", p.Comment(r)))
	return strings.Join(parts, " ")
}
