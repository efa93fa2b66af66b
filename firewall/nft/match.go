package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// Match is one condition of a rule, renderable both ways.
type Match interface {
	Text() string
	Exprs(sets *setIndex) []expr.Any
}

// setIndex resolves set names to the IDs the kernel needs when a rule
// refers to a set created in the same batch.
type setIndex struct{ ids map[string]uint32 }

func (s *setIndex) id(name string) uint32 {
	if s == nil {
		return 0
	}
	return s.ids[name]
}

// Iface matches the input or output interface name.
type Iface struct {
	Out  bool
	Name string
}

func (m Iface) Text() string {
	if m.Out {
		return fmt.Sprintf("oifname %q", m.Name)
	}
	return fmt.Sprintf("iifname %q", m.Name)
}

func (m Iface) Exprs(*setIndex) []expr.Any {
	key := expr.MetaKeyIIFNAME
	if m.Out {
		key = expr.MetaKeyOIFNAME
	}
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, m.Name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
	}
}

// NfProto restricts an inet-table rule to one family. nft adds it
// implicitly in front of ip/ip6 matches and hides it in listings; the text
// form is empty for that reason.
type NfProto struct{ V6 bool }

func (m NfProto) Text() string { return "" }

func (m NfProto) Exprs(*setIndex) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if m.V6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// Addr matches the source or destination address against one prefix or a
// named set.
type Addr struct {
	Dst    bool
	V6     bool
	Prefix netip.Prefix // when Set is empty
	Set    string
}

func (m Addr) field() (name string, off, n uint32) {
	fam, dir := "ip", "saddr"
	off, n = 12, 4
	if m.V6 {
		fam, off, n = "ip6", 8, 16
	}
	if m.Dst {
		dir = "daddr"
		off += n
	}
	return fam + " " + dir, off, n
}

func (m Addr) Text() string {
	name, _, _ := m.field()
	if m.Set != "" {
		return name + " @" + m.Set
	}
	if m.Prefix.IsSingleIP() {
		return name + " " + m.Prefix.Addr().String()
	}
	return name + " " + m.Prefix.String()
}

func (m Addr) Exprs(sets *setIndex) []expr.Any {
	_, off, n := m.field()
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
	if m.Set != "" {
		return []expr.Any{load, &expr.Lookup{SourceRegister: 1, SetName: m.Set, SetID: sets.id(m.Set)}}
	}
	out := []expr.Any{load}
	if !m.Prefix.IsSingleIP() {
		mask := make([]byte, n)
		for i := 0; i < m.Prefix.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m.Prefix.Addr().AsSlice()})
}

// L4Proto matches the layer-4 protocol.
type L4Proto struct{ Proto policy.Protocol }

var protoNums = map[policy.Protocol]byte{policy.ProtoTCP: unix.IPPROTO_TCP, policy.ProtoUDP: unix.IPPROTO_UDP, policy.ProtoICMP: unix.IPPROTO_ICMP, policy.ProtoICMPv6: unix.IPPROTO_ICMPV6}

func (m L4Proto) Text() string {
	if m.Proto == policy.ProtoICMPv6 {
		return "meta l4proto ipv6-icmp"
	}
	return "meta l4proto " + string(m.Proto)
}

func (m L4Proto) Exprs(*setIndex) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNums[m.Proto]}},
	}
}

// Port matches a TCP or UDP port against one range or a named set. It
// follows an L4Proto match, which nft folds into "tcp dport" in listings;
// the text form therefore carries the protocol and the L4Proto before it
// renders as empty text (see Rule.Text).
type Port struct {
	Proto policy.Protocol
	Dst   bool
	Range policy.Range // when Set is empty
	Set   string
}

func (m Port) Text() string {
	s := string(m.Proto) + " sport "
	if m.Dst {
		s = string(m.Proto) + " dport "
	}
	switch {
	case m.Set != "":
		return s + "@" + m.Set
	case m.Range.Lo == m.Range.Hi:
		return s + fmt.Sprint(m.Range.Lo)
	default:
		return s + fmt.Sprintf("%d-%d", m.Range.Lo, m.Range.Hi)
	}
}

func (m Port) Exprs(sets *setIndex) []expr.Any {
	var off uint32
	if m.Dst {
		off = 2
	}
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
	switch {
	case m.Set != "":
		return []expr.Any{load, &expr.Lookup{SourceRegister: 1, SetName: m.Set, SetID: sets.id(m.Set)}}
	case m.Range.Lo == m.Range.Hi:
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(m.Range.Lo)}}
	default:
		return []expr.Any{load, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(m.Range.Lo), ToData: be16(m.Range.Hi)}}
	}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// CtState matches connection-tracking states.
type CtState struct{ State policy.CtState }

func (m CtState) Text() string { return "ct state " + strings.Join(m.State.Names(), ",") }

func (m CtState) Exprs(*setIndex) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, uint32(m.State)), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ExplicitNfProto is NfProto written out in the text form, for rules where
// no later payload match implies it (the recon rules).
type ExplicitNfProto struct{ V6 bool }

func (m ExplicitNfProto) Text() string {
	if m.V6 {
		return "meta nfproto ipv6"
	}
	return "meta nfproto ipv4"
}

func (m ExplicitNfProto) Exprs(s *setIndex) []expr.Any { return NfProto(m).Exprs(s) }

// ICMPv6Type matches an ICMPv6 type range.
type ICMPv6Type struct{ Lo, Hi uint8 }

func (m ICMPv6Type) Text() string { return fmt.Sprintf("icmpv6 type %d-%d", m.Lo, m.Hi) }

func (m ICMPv6Type) Exprs(*setIndex) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{m.Lo}, ToData: []byte{m.Hi}},
	}
}

// ICMPEcho matches ICMP or ICMPv6 echo requests (pings).
type ICMPEcho struct{ V6 bool }

func (m ICMPEcho) Text() string {
	if m.V6 {
		return "icmpv6 type echo-request"
	}
	return "icmp type echo-request"
}

func (m ICMPEcho) Exprs(*setIndex) []expr.Any {
	proto, typ := byte(unix.IPPROTO_ICMP), byte(8)
	if m.V6 {
		proto, typ = unix.IPPROTO_ICMPV6, 128
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
	}
}
