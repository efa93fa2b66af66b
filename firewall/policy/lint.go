package policy

import (
	"fmt"
	"net/netip"
)

// lint finds rules that can never match or that a force-allow overrides,
// and lists that nothing uses. Each warning names both rules.
func (c *Compiled) lint(p *Policy) []Warning {
	var ws []Warning
	for _, d := range []Direction{DirIn, DirOut} {
		rules := c.Ordered(d)
		// A rule matching one exact destination port can only cover rules
		// with that same port; bucketing by it keeps big policies (10,000
		// rules) near linear instead of comparing every pair.
		exact := map[uint16][]int{}
		var others []int
		for j, b := range rules {
			best := -1
			check := func(i int) {
				a := rules[i]
				if (best < 0 || i < best) && a.Action != ActionLogOnly && a.Index != 0 && covers(a, b) {
					best = i
				}
			}
			for _, i := range others {
				check(i)
			}
			p, single := exactPort(b)
			if single {
				for _, i := range exact[p] {
					check(i)
				}
				exact[p] = append(exact[p], j)
			} else {
				others = append(others, j)
			}
			if best < 0 || b.Index == 0 {
				continue
			}
			a := rules[best]
			if terminal(a.Action) == terminal(b.Action) || b.Action == ActionLogOnly {
				ws = append(ws, Warning{Rules: []int{a.Index, b.Index}, Message: fmt.Sprintf("%s is redundant: %s before it already matches everything it matches", b.Label(), a.Label())})
			} else {
				ws = append(ws, Warning{Rules: []int{a.Index, b.Index}, Message: fmt.Sprintf("%s (%s) contradicts %s (%s), which matches everything it matches first: %s never takes effect", b.Label(), b.Action, a.Label(), a.Action, b.Label())})
			}
		}
		for _, f := range rules {
			if f.Action != ActionForceAllow || f.Index == 0 {
				continue
			}
			for _, b := range rules {
				if b.Action == ActionDeny && !covers(f, b) && intersects(f, b) {
					ws = append(ws, Warning{Rules: []int{f.Index, b.Index}, Message: fmt.Sprintf("%s (deny) is overridden by force-allow %s for the traffic both match", b.Label(), f.Label())})
				}
			}
		}
	}
	// Only "@list" references matter here; recording every address of a
	// 10,000-rule policy was most of lint's allocations.
	used := map[string]bool{}
	for _, r := range p.Rules {
		for _, ss := range [][]string{r.Src, r.Dst} {
			for _, s := range ss {
				if len(s) > 0 && s[0] == '@' {
					used["ip:"+s] = true
				}
			}
		}
		for _, ss := range [][]PortRef{r.SrcPorts, r.DstPorts} {
			for _, s := range ss {
				if len(s) > 0 && s[0] == '@' {
					used["port:"+string(s)] = true
				}
			}
		}
	}
	for _, n := range sortedKeys(p.IPLists) {
		if !used["ip:@"+n] {
			ws = append(ws, Warning{Message: fmt.Sprintf("ip_lists.%s: not used by any rule", n)})
		}
	}
	for _, n := range sortedKeys(p.PortLists) {
		if !used["port:@"+n] {
			ws = append(ws, Warning{Message: fmt.Sprintf("port_lists.%s: not used by any rule", n)})
		}
	}
	return ws
}

func exactPort(r *CRule) (uint16, bool) {
	if r.DstPorts != nil && len(r.DstPorts.Ranges) == 1 && r.DstPorts.Ranges[0].Lo == r.DstPorts.Ranges[0].Hi {
		return r.DstPorts.Ranges[0].Lo, true
	}
	return 0, false
}

// terminal maps actions to the verdict they give.
func terminal(a Action) Action {
	if a == ActionForceAllow {
		return ActionAllow
	}
	return a
}

// covers reports whether every packet b matches, a matches too.
func covers(a, b *CRule) bool {
	return a.Direction == b.Direction &&
		(a.Protocol == ProtoAny || a.Protocol == b.Protocol) &&
		(!b.V4 || a.V4) && (!b.V6 || a.V6) &&
		(a.Interface == "" || a.Interface == b.Interface) &&
		(a.State == 0 || (b.State != 0 && b.State&^a.State == 0)) &&
		portCovers(a.DstPorts, b.DstPorts) && portCovers(a.SrcPorts, b.SrcPorts) &&
		addrCovers(a.Src, b.Src) && addrCovers(a.Dst, b.Dst)
}

// intersects reports whether some packet matches both a and b.
func intersects(a, b *CRule) bool {
	return a.Direction == b.Direction &&
		(a.Protocol == ProtoAny || b.Protocol == ProtoAny || a.Protocol == b.Protocol) &&
		((a.V4 && b.V4) || (a.V6 && b.V6)) &&
		(a.Interface == "" || b.Interface == "" || a.Interface == b.Interface) &&
		(a.State == 0 || b.State == 0 || a.State&b.State != 0) &&
		portIntersects(a.DstPorts, b.DstPorts) && portIntersects(a.SrcPorts, b.SrcPorts) &&
		addrIntersects(a.Src, b.Src) && addrIntersects(a.Dst, b.Dst)
}

func addrCovers(a, b *AddrMatch) bool {
	if a == nil {
		return true
	}
	if b == nil {
		return false
	}
	return prefixesCover(a.V4, b.V4) && prefixesCover(a.V6, b.V6)
}

func prefixesCover(as, bs []netip.Prefix) bool {
	for _, q := range bs {
		ok := false
		for _, p := range as {
			if p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func addrIntersects(a, b *AddrMatch) bool {
	if a == nil || b == nil {
		return true
	}
	return prefixesOverlap(a.V4, b.V4) || prefixesOverlap(a.V6, b.V6)
}

func prefixesOverlap(as, bs []netip.Prefix) bool {
	for _, p := range as {
		for _, q := range bs {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return false
}

func portCovers(a, b *PortMatch) bool {
	if a == nil {
		return true
	}
	if b == nil {
		return false
	}
	for _, q := range b.Ranges {
		ok := false
		for _, p := range a.Ranges {
			if p.Lo <= q.Lo && q.Hi <= p.Hi {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func portIntersects(a, b *PortMatch) bool {
	if a == nil || b == nil {
		return true
	}
	for _, p := range a.Ranges {
		for _, q := range b.Ranges {
			if p.Lo <= q.Hi && q.Lo <= p.Hi {
				return true
			}
		}
	}
	return false
}
