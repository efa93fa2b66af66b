package nft

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batchBuilder is a google/nftables Conn that only records: its Flush hands
// us the batch it built instead of sending it. google/nftables asks the
// kernel to acknowledge every message and reads the acks one by one, which
// for a 10,000-rule policy is 10,000 extra messages and twice as many
// system calls; sendBatch sends the same bytes asking for one ack only.
type batchBuilder struct {
	*nftables.Conn
	msgs []netlink.Message
}

func newBatchBuilder() *batchBuilder {
	b := &batchBuilder{}
	ack := []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}
	c, _ := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return ack, nil // what Flush waits for after each message
		}
		b.msgs = append(b.msgs, req...)
		return nil, nil
	}))
	b.Conn = c
	return b
}

// sendBatch sends the recorded batch on a fresh socket in our namespace,
// with an ack requested for the last command only. The kernel handles a
// batch inside sendmsg, so every answer is queued when it returns: errors
// (always sent) or that one ack.
func (k *Conn) sendBatch(b *batchBuilder) error {
	if err := b.Flush(); err != nil {
		return fmt.Errorf("encoding batch: %w", err)
	}
	msgs := b.msgs
	if len(msgs) < 3 {
		return nil // begin and end only
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return classify(fmt.Errorf("opening netlink: %w", err))
	}
	defer c.Close()
	if err := bigBuffers(c); err != nil {
		return fmt.Errorf("sizing netlink buffers: %w", err)
	}
	last := len(msgs) - 2 // the command before the batch end
	for i := range msgs {
		msgs[i].Header.Sequence, msgs[i].Header.PID = 0, 0
		msgs[i].Header.Flags &^= netlink.Acknowledge
		if i == last {
			msgs[i].Header.Flags |= netlink.Acknowledge
		}
	}
	sent, err := c.SendMessages(msgs)
	if err != nil {
		return classify(fmt.Errorf("sending batch: %w", err))
	}
	want := sent[last].Header.Sequence
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		return err
	}
	for {
		replies, err := c.Receive()
		if err != nil {
			return classify(fmt.Errorf("committing ruleset: %w", err))
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == want {
				return nil
			}
		}
	}
}
