package nft

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
)

// BlockEntry is one address or network to block for TTL (0: until removed).
type BlockEntry struct {
	Prefix netip.Prefix
	TTL    time.Duration
}

// Blocked is one entry of the block sets as read back.
type Blocked struct {
	Prefix  netip.Prefix
	Timeout time.Duration // as set; 0 for permanent
	Expires time.Duration // time left
}

// EnsureBlockSets makes sure the block sets exist; without a policy it
// creates the block-only table (accept everything, drop blocked).
func (k *Conn) EnsureBlockSets() error {
	// Cheap path first: listing sets, not the whole (maybe 10,000-rule)
	// table, since every block request passes here.
	if sets, err := k.c.GetSets(k.table); err == nil {
		n := 0
		for _, s := range sets {
			if s.Name == SetBlock4 || s.Name == SetBlock6 {
				n++
			}
		}
		if n == 2 {
			return nil
		}
	}
	st, err := k.Read()
	if err != nil {
		return err
	}
	if _, ok := st.Sets[SetBlock4]; ok {
		if _, ok := st.Sets[SetBlock6]; ok {
			return nil
		}
	}
	if st.Exists {
		return fmt.Errorf("table inet %s has no block sets: apply a policy first", TableName)
	}
	return k.replace(st, BlockOnly())
}

func (k *Conn) blockSet(v6 bool) *nftables.Set {
	if v6 {
		return &nftables.Set{Table: k.table, Name: SetBlock6, KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	}
	return &nftables.Set{Table: k.table, Name: SetBlock4, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
}

// Block adds entries to the block sets in one batch. Entries covered by
// another entry of the same call are dropped first: an interval set
// refuses overlaps, and one refused element would refuse the batch.
func (k *Conn) Block(entries []BlockEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := k.EnsureBlockSets(); err != nil {
		return err
	}
	entries = mergeEntries(entries)
	for _, v6 := range []bool{false, true} {
		var elems []nftables.SetElement
		for _, e := range entries {
			if e.Prefix.Addr().Is6() == v6 {
				elems = append(elems, prefixElements(e.Prefix, e.TTL)...)
			}
		}
		if err := k.sendElements(k.blockSet(v6), elems, false); err != nil {
			return err
		}
	}
	return k.commitOwn("adding to block sets")
}

// Unblock removes entries from the block sets. Removing an entry that is
// not there is an error from the kernel, so callers unblock what Blocked
// lists.
func (k *Conn) Unblock(prefixes []netip.Prefix) error {
	for _, v6 := range []bool{false, true} {
		var elems []nftables.SetElement
		for _, p := range prefixes {
			if p.Addr().Is6() == v6 {
				elems = append(elems, prefixElements(p, 0)...)
			}
		}
		if err := k.sendElements(k.blockSet(v6), elems, true); err != nil {
			return err
		}
	}
	return k.commitOwn("removing from block sets")
}

// commitOwn commits a block-set change. Block sets are not part of the
// policy comparison, so when the kernel held our policy untouched before
// the commit, it still does after, at the new generation.
func (k *Conn) commitOwn(what string) error {
	fp, _, known := k.Mark()
	clean := known && k.Unchanged(fp)
	if err := k.c.Flush(); err != nil {
		return classify(fmt.Errorf("%s: %w", what, err))
	}
	if clean {
		k.remember(fp)
	}
	return nil
}

func (k *Conn) sendElements(s *nftables.Set, elems []nftables.SetElement, del bool) error {
	return sendElements(k.c, s, elems, del)
}

func sendElements(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement, del bool) error {
	for len(elems) > 0 {
		n := min(elemChunk, len(elems))
		if n < len(elems) && elems[n].IntervalEnd {
			n++ // an interval's start and end travel together
		}
		var err error
		if del {
			err = c.SetDeleteElements(s, elems[:n])
		} else {
			err = c.SetAddElements(s, elems[:n])
		}
		if err != nil {
			return fmt.Errorf("encoding elements of %s: %w", s.Name, err)
		}
		elems = elems[n:]
	}
	return nil
}

// Blocked lists the block sets.
func (k *Conn) Blocked() ([]Blocked, error) {
	var out []Blocked
	for _, v6 := range []bool{false, true} {
		els, err := k.c.GetSetElements(k.blockSet(v6))
		if err != nil {
			return nil, classify(fmt.Errorf("listing block set: %w", err))
		}
		slices.SortFunc(els, func(a, b nftables.SetElement) int {
			if c := bytes.Compare(a.Key, b.Key); c != 0 {
				return c
			}
			// An end and the next start can share a key; the end first.
			if a.IntervalEnd != b.IntervalEnd {
				if a.IntervalEnd {
					return -1
				}
				return 1
			}
			return 0
		})
		for i := 0; i < len(els); i++ {
			e := els[i]
			if e.IntervalEnd {
				continue
			}
			start, ok := netip.AddrFromSlice(e.Key)
			if !ok {
				continue
			}
			var end netip.Addr // exclusive; invalid means "to the top"
			if i+1 < len(els) && els[i+1].IntervalEnd {
				end, _ = netip.AddrFromSlice(els[i+1].Key)
				i++
			}
			for _, p := range rangePrefixes(start, end) {
				out = append(out, Blocked{Prefix: p, Timeout: e.Timeout, Expires: e.Expires})
			}
		}
	}
	return out, nil
}

// rangePrefixes splits [start, end) into the fewest prefixes.
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for start.IsValid() && (!end.IsValid() || start.Less(end)) {
		bits := start.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(start, bits-1).Masked()
			last, ok := prefixEnd(p)
			if p.Addr() != start || (end.IsValid() && (!ok || end.Less(last))) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(start, bits)
		out = append(out, p)
		next, ok := prefixEnd(p)
		if !ok {
			break
		}
		start = next
	}
	return out
}

// mergeEntries drops exact duplicates and entries inside another entry,
// keeping the longest TTL.
func mergeEntries(in []BlockEntry) []BlockEntry {
	s := slices.Clone(in)
	for i := range s {
		s[i].Prefix = s[i].Prefix.Masked()
	}
	slices.SortFunc(s, func(a, b BlockEntry) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	var out []BlockEntry
	for _, e := range s {
		if n := len(out); n > 0 && out[n-1].Prefix.Bits() <= e.Prefix.Bits() && out[n-1].Prefix.Contains(e.Prefix.Addr()) {
			if out[n-1].TTL != 0 && (e.TTL == 0 || e.TTL > out[n-1].TTL) {
				out[n-1].TTL = e.TTL
			}
			continue
		}
		out = append(out, e)
	}
	return out
}
