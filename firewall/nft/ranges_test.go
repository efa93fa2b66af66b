package nft

import (
	"net/netip"
	"testing"
)

// FuzzRangePrefixes checks the split of a kernel interval back into
// prefixes against the obvious oracle: the prefixes are aligned, follow
// each other without gaps, and cover exactly [start, end).
func FuzzRangePrefixes(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0}, []byte{10, 0, 1, 4})
	f.Add([]byte{0, 0, 0, 0}, []byte{255, 255, 255, 255})
	f.Add([]byte{192, 0, 2, 7}, []byte{192, 0, 2, 8})
	f.Add(netip.MustParseAddr("2001:db8::").AsSlice(), netip.MustParseAddr("2001:db8::1:0").AsSlice())
	f.Fuzz(func(t *testing.T, a, b []byte) {
		start, ok1 := netip.AddrFromSlice(a)
		end, ok2 := netip.AddrFromSlice(b)
		if !ok1 || !ok2 || start.BitLen() != end.BitLen() || !start.Less(end) {
			return
		}
		ps := rangePrefixes(start, end)
		if len(ps) > 2*start.BitLen() {
			t.Fatalf("rangePrefixes(%s, %s) = %d prefixes, more than 2*bits", start, end, len(ps))
		}
		next := start
		for _, p := range ps {
			if p.Masked() != p || p.Addr() != next {
				t.Fatalf("rangePrefixes(%s, %s): %s is misaligned or leaves a gap before it", start, end, p)
			}
			var ok bool
			if next, ok = prefixEnd(p); !ok {
				t.Fatalf("rangePrefixes(%s, %s): %s runs past the end of the address space", start, end, p)
			}
		}
		if next != end {
			t.Fatalf("rangePrefixes(%s, %s) = %v ends at %s", start, end, ps, next)
		}
	})
}
