package nft

import (
	"net/netip"
	"testing"
)

func TestParseProbe(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		alen int
		want Probe
		ok   bool
	}{
		{"ipv4 tcp syn", []byte{192, 0, 2, 7, 10, 0, 0, 1, 6, 0, 0, 0, 0x02, 0, 0, 0, 0, 22, 0, 0}, 4,
			Probe{Src: netip.MustParseAddr("192.0.2.7"), Dst: netip.MustParseAddr("10.0.0.1"), Proto: "tcp", Flags: 2, Port: 22}, true},
		{"ipv4 ping", []byte{192, 0, 2, 7, 10, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 4,
			Probe{Src: netip.MustParseAddr("192.0.2.7"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: "icmp"}, true},
		{"ipv6 udp", append(append(netip.MustParseAddr("2001:db8::9").AsSlice(), netip.MustParseAddr("2001:db8::1").AsSlice()...), 17, 0, 0, 0, 0, 0, 0, 0, 0, 53, 0, 0), 16,
			Probe{Src: netip.MustParseAddr("2001:db8::9"), Dst: netip.MustParseAddr("2001:db8::1"), Proto: "udp", Port: 53}, true},
		{"short", []byte{192, 0, 2, 7, 6, 0, 0, 0, 0, 22, 0, 0}, 4, Probe{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseProbe(tc.key, tc.alen)
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseProbe = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseProbe: whatever bytes the kernel hands back, decoding a recon
// key never panics and yields addresses of the set's family.
func FuzzParseProbe(f *testing.F) {
	f.Add([]byte{192, 0, 2, 7, 10, 0, 0, 1, 6, 0, 0, 0, 0x02, 0, 0, 0, 0, 22, 0, 0}, false)
	f.Add(make([]byte, 44), true)
	f.Add([]byte{1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, key []byte, v6 bool) {
		alen := 4
		if v6 {
			alen = 16
		}
		p, ok := parseProbe(key, alen)
		if !ok {
			return
		}
		if p.Src.BitLen() != alen*8 || p.Dst.BitLen() != alen*8 {
			t.Fatalf("parseProbe(%x) = %+v: wrong address family", key, p)
		}
	})
}
