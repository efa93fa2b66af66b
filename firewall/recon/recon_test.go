package recon

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// probes makes one probe per port from src to dst.
func probes(src, dst, proto string, flags uint8, ports ...uint16) []Probe {
	var out []Probe
	for _, p := range ports {
		out = append(out, Probe{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, Flags: flags, Port: p})
	}
	return out
}

// sweep makes one probe per destination address.
func sweep(src, proto string, flags uint8, port uint16, dsts ...string) []Probe {
	var out []Probe
	for _, d := range dsts {
		out = append(out, Probe{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(d), Proto: proto, Flags: flags, Port: port})
	}
	return out
}

const syn, fin, xmas = 0x02, 0x01, 0x29

func TestDetector(t *testing.T) {
	d := &Detector{Threshold: 5, Hosts: 3, Cooldown: time.Minute}
	now := time.Unix(1000, 0)
	var in []Probe
	in = append(in, probes("192.0.2.1", "10.0.0.1", "tcp", syn, 1, 2, 3, 4, 5, 6)...)
	in = append(in, probes("192.0.2.2", "10.0.0.1", "tcp", syn, 22, 80, 22, 80)...) // a client, repeated
	in = append(in, probes("2001:db8::9", "2001:db8::1", "udp", 0, 53, 123, 161)...)
	in = append(in, probes("2001:db8::9", "2001:db8::1", "tcp", syn, 22, 25)...)
	in = append(in, probes("127.0.0.1", "127.0.0.1", "tcp", syn, 1, 2, 3, 4, 5, 6, 7)...)
	got := d.Observe(now, in)
	if len(got) != 2 {
		t.Fatalf("Observe = %+v, want 2 findings", got)
	}
	if got[0].Src.String() != "192.0.2.1" || got[0].Label != "tcp port scan" || got[0].Count != 6 || !reflect.DeepEqual(got[0].Types, []string{TypeSYN}) {
		t.Errorf("finding 0 = %+v", got[0])
	}
	if got[1].Src.String() != "2001:db8::9" || got[1].Label != "tcp/udp port scan" || len(got[1].Ports) != 5 || !reflect.DeepEqual(got[1].Types, []string{TypeSYN, TypeUDP}) {
		t.Errorf("finding 1 = %+v", got[1])
	}
	if again := d.Observe(now.Add(time.Second), in); len(again) != 0 {
		t.Errorf("within cooldown Observe = %+v, want nothing", again)
	}
	if later := d.Observe(now.Add(2*time.Minute), in); len(later) != 2 {
		t.Errorf("after cooldown Observe = %+v, want 2 findings again", later)
	}
}

func TestSweeps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     []Probe
		want   []Finding
		hosts  int
		thresh int
	}{
		{
			name: "ping sweep, both families",
			in: append(sweep("198.51.100.7", "icmp", 0, 0, "10.0.0.1", "10.0.0.2"),
				sweep("198.51.100.7", "icmpv6", 0, 0, "2001:db8::1")...),
			want: []Finding{{Kind: KindSweep, Label: "icmp host sweep", Types: []string{TypeICMP}, Count: 3}},
		},
		{
			name: "syn sweep of port 22",
			in:   sweep("198.51.100.7", "tcp", syn, 22, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"),
			want: []Finding{{Kind: KindSweep, Label: "tcp host sweep", Types: []string{TypeSYN}, Ports: []uint16{22}, Count: 4}},
		},
		{
			name: "different ports on different addresses is no sweep",
			in: append(sweep("198.51.100.7", "tcp", syn, 22, "10.0.0.1", "10.0.0.2"),
				sweep("198.51.100.7", "tcp", syn, 80, "10.0.0.3")...),
		},
		{
			name:   "fin scan that is also a sweep",
			thresh: 3,
			in: append(probes("198.51.100.7", "10.0.0.1", "tcp", fin, 1, 2, 3),
				sweep("198.51.100.7", "tcp", xmas, 443, "10.0.0.2", "10.0.0.3", "10.0.0.4")...),
			want: []Finding{
				{Kind: KindSweep, Label: "tcp host sweep", Types: []string{TypeXmas}, Ports: []uint16{443}, Count: 3},
				{Kind: KindPortScan, Label: "tcp port scan", Types: []string{TypeFIN, TypeXmas}, Ports: []uint16{1, 2, 3, 443}, Count: 4},
			},
		},
		{
			name: "null and ack probes are labelled",
			in: append(sweep("198.51.100.7", "tcp", 0, 80, "10.0.0.1", "10.0.0.2", "10.0.0.3"),
				sweep("198.51.100.7", "tcp", 0x10, 80, "10.0.0.1")...),
			want: []Finding{{Kind: KindSweep, Label: "tcp host sweep", Types: []string{TypeACK, TypeNULL}, Ports: []uint16{80}, Count: 3}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := tc.thresh
			if th == 0 {
				th = 20
			}
			d := &Detector{Threshold: th, Hosts: 3, Cooldown: time.Minute}
			got := d.Observe(time.Unix(1000, 0), tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("Observe = %+v, want %d findings", got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Src.String() != "198.51.100.7" || g.Kind != w.Kind || g.Label != w.Label || g.Count != w.Count ||
					!reflect.DeepEqual(g.Types, w.Types) || !reflect.DeepEqual(g.Ports, w.Ports) {
					t.Errorf("finding %d = %+v, want %+v", i, g, w)
				}
				if len(g.Addrs) == 0 {
					t.Errorf("finding %d lists no addresses", i)
				}
			}
		})
	}
}

func TestScanType(t *testing.T) {
	for flags, want := range map[uint8]string{0x02: TypeSYN, 0x42: TypeSYN, 0xc2: TypeSYN, 0x01: TypeFIN, 0x00: TypeNULL, 0x29: TypeXmas, 0x10: TypeACK, 0x12: TypeTCP} {
		if got := ScanType(Probe{Proto: "tcp", Flags: flags}); got != want {
			t.Errorf("ScanType(tcp %#x) = %q, want %q", flags, got, want)
		}
	}
	if got := ScanType(Probe{Proto: "udp"}); got != TypeUDP {
		t.Errorf("udp: %q", got)
	}
}
