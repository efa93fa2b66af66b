package recon

import (
	"net/netip"
	"testing"
	"time"
)

func probes(src string, proto string, ports ...uint16) []Probe {
	var out []Probe
	for _, p := range ports {
		out = append(out, Probe{Src: netip.MustParseAddr(src), Proto: proto, Port: p})
	}
	return out
}

func TestDetector(t *testing.T) {
	d := &Detector{Threshold: 5, Cooldown: time.Minute}
	now := time.Unix(1000, 0)
	var in []Probe
	in = append(in, probes("192.0.2.1", "tcp", 1, 2, 3, 4, 5, 6)...)
	in = append(in, probes("192.0.2.2", "tcp", 22, 80, 22, 80)...) // a client, repeated
	in = append(in, probes("2001:db8::9", "udp", 53, 123, 161)...)
	in = append(in, probes("2001:db8::9", "tcp", 22, 25)...)
	in = append(in, probes("127.0.0.1", "tcp", 1, 2, 3, 4, 5, 6, 7)...)
	got := d.Observe(now, in)
	if len(got) != 2 {
		t.Fatalf("Observe = %+v, want 2 findings", got)
	}
	if got[0].Src.String() != "192.0.2.1" || got[0].Kind != "tcp port scan" || got[0].Count != 6 {
		t.Errorf("finding 0 = %+v", got[0])
	}
	if got[1].Src.String() != "2001:db8::9" || got[1].Kind != "tcp/udp port scan" || len(got[1].Ports) != 5 {
		t.Errorf("finding 1 = %+v", got[1])
	}
	if again := d.Observe(now.Add(time.Second), in); len(again) != 0 {
		t.Errorf("within cooldown Observe = %+v, want nothing", again)
	}
	if later := d.Observe(now.Add(2*time.Minute), in); len(later) != 2 {
		t.Errorf("after cooldown Observe = %+v, want 2 findings again", later)
	}
}
