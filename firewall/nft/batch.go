package nft

import (
	"encoding/binary"
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
func (k *Conn) sendBatch(b *batchBuilder, more ...[]netlink.Message) error {
	if err := b.Flush(); err != nil {
		return fmt.Errorf("encoding batch: %w", err)
	}
	msgs := b.msgs
	if n := len(msgs); n >= 2 && len(more) > 0 {
		// More commands encoded elsewhere go before the batch end.
		end := msgs[n-1]
		msgs = msgs[: n-1 : n-1]
		for _, m := range more {
			msgs = append(msgs, m...)
		}
		msgs = append(msgs, end)
	}
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
	buf := marshalBatch(msgs, last)
	if err := sendRaw(c, buf); err != nil {
		return classify(fmt.Errorf("sending batch: %w", err))
	}
	want := uint32(last + 1)
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

// marshalBatch lays the messages out in one buffer sized up front, with
// sequence numbers 1..n and an ack requested for message ack only.
// netlink.Conn.SendMessages marshals each message into its own slice and
// appends them to a growing buffer: for a 10,000-rule policy that copying
// was a sixth of the CPU an apply took.
func marshalBatch(msgs []netlink.Message, ack int) []byte {
	n := 0
	for i := range msgs {
		n += nlmsgAlign(unix.NLMSG_HDRLEN + len(msgs[i].Data))
	}
	buf := make([]byte, n)
	off := 0
	for i := range msgs {
		m := &msgs[i]
		l := unix.NLMSG_HDRLEN + len(m.Data)
		// google/nftables asks for every rule to be echoed back (to learn
		// its handle); we never use the handles, and building and reading
		// 10,000 echoes cost as much kernel time as adding the rules.
		flags := m.Header.Flags &^ (netlink.Acknowledge | unix.NLM_F_ECHO)
		if i == ack {
			flags |= netlink.Acknowledge
		}
		binary.NativeEndian.PutUint32(buf[off:], uint32(l))
		binary.NativeEndian.PutUint16(buf[off+4:], uint16(m.Header.Type))
		binary.NativeEndian.PutUint16(buf[off+6:], uint16(flags))
		binary.NativeEndian.PutUint32(buf[off+8:], uint32(i+1))
		binary.NativeEndian.PutUint32(buf[off+12:], 0) // the kernel fills in our port ID
		copy(buf[off+unix.NLMSG_HDRLEN:], m.Data)
		off += nlmsgAlign(l)
	}
	return buf
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// sendRaw hands buf to the kernel in one sendmsg; the kernel processes
// the whole batch inside that call.
func sendRaw(c *netlink.Conn, buf []byte) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), buf, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}
