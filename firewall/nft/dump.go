package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// raw returns a plain netfilter netlink socket in our namespace, for the
// requests google/nftables does not offer or decodes too slowly.
func (k *Conn) raw() (*netlink.Conn, error) {
	if k.rawc == nil {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
		if err != nil {
			return nil, classify(fmt.Errorf("opening netlink: %w", err))
		}
		_ = bigBuffers(c) // without, big dumps are only slower
		k.rawc = c
	}
	return k.rawc, nil
}

// dumpRules lists our table's rules by chain, in order, with their
// comments and counters. It decodes only those attributes: a drift check
// on a 10,000-rule table must not pay for decoding every expression, which
// is what GetRules does.
func (k *Conn) dumpRules() (map[string][]RuleCounter, error) {
	c, err := k.raw()
	if err != nil {
		return nil, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, TableName)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, classify(fmt.Errorf("dumping rules: %w", err))
	}
	out := map[string][]RuleCounter{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decoding rule: %w", err)
		}
		var chain, table string
		var rc RuleCounter
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				table = ad.String()
			case unix.NFTA_RULE_CHAIN:
				chain = ad.String()
			case unix.NFTA_RULE_USERDATA:
				rc.Comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nd *netlink.AttributeDecoder) error {
					for nd.Next() {
						nd.Nested(func(ed *netlink.AttributeDecoder) error {
							counter := false
							for ed.Next() {
								switch ed.Type() {
								case unix.NFTA_EXPR_NAME:
									counter = ed.String() == "counter"
								case unix.NFTA_EXPR_DATA:
									if counter {
										ed.Nested(func(cd *netlink.AttributeDecoder) error {
											for cd.Next() {
												switch cd.Type() {
												case unix.NFTA_COUNTER_PACKETS:
													rc.Packets = binary.BigEndian.Uint64(cd.Bytes())
												case unix.NFTA_COUNTER_BYTES:
													rc.Bytes = binary.BigEndian.Uint64(cd.Bytes())
												}
											}
											return nil
										})
									}
								}
							}
							return nil
						})
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding rule: %w", err)
		}
		if table == TableName {
			out[chain] = append(out[chain], rc)
		}
	}
	return out, nil
}
