package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// Probe is one (source, destination, protocol, TCP flags, port) the kernel
// saw a new inbound connection attempt, invalid TCP packet or ping for
// within the recon window.
type Probe struct {
	Src, Dst netip.Addr
	Proto    policy.Protocol
	Flags    uint8  // TCP flags; 0 for other protocols
	Port     uint16 // 0 for ICMP
}

// Probes reads the recon sets. It returns nothing when the policy has no
// recon section.
func (k *Conn) Probes() ([]Probe, error) {
	var out []Probe
	for _, v6 := range []bool{false, true} {
		name, alen := SetRecon4, 4
		if v6 {
			name, alen = SetRecon6, 16
		}
		s, err := k.c.GetSetByName(k.table, name)
		if err != nil {
			continue // no recon in this policy
		}
		els, err := k.c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", name, err)
		}
		for _, e := range els {
			if p, ok := parseProbe(e.Key, alen); ok {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// parseProbe decodes a recon set key: each field of a concatenation is
// padded to 4 bytes.
func parseProbe(key []byte, alen int) (Probe, bool) {
	if len(key) < 2*alen+12 {
		return Probe{}, false
	}
	src, _ := netip.AddrFromSlice(key[:alen])
	dst, _ := netip.AddrFromSlice(key[alen : 2*alen])
	o := 2 * alen
	return Probe{Src: src, Dst: dst, Proto: ProtoName(key[o]), Flags: key[o+4], Port: binary.BigEndian.Uint16(key[o+8:])}, true
}
