package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// Probe is one (source, protocol, port) the kernel saw a new inbound
// connection for within the recon window.
type Probe struct {
	Src   netip.Addr
	Proto policy.Protocol
	Port  uint16
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
			// Concatenated keys pad each field to 4 bytes.
			if len(e.Key) < alen+8 {
				continue
			}
			a, _ := netip.AddrFromSlice(e.Key[:alen])
			out = append(out, Probe{Src: a, Proto: ProtoName(e.Key[alen]), Port: binary.BigEndian.Uint16(e.Key[alen+4:])})
		}
	}
	return out, nil
}
