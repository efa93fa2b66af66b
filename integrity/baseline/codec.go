package baseline

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mamori-sec/mamori/integrity/policy"
)

// The file is: magic, header fields, entries (paths prefix-compressed
// against the previous one, attributes in policy.Attr bit order), then a
// 32-byte HMAC-SHA256 of everything before it.
const (
	magic   = "MAMFIM\x00\x01"
	macSize = 32
)

// ErrCorrupt marks a baseline that cannot be decoded.
var ErrCorrupt = errors.New("baseline corrupt")

// Header describes a baseline.
type Header struct {
	Created      int64 // ns since the epoch
	PolicyName   string
	PolicyDigest string
}

type encoder struct {
	w    *bufio.Writer
	prev string
	buf  [binary.MaxVarintLen64]byte
}

func (e *encoder) uvarint(v uint64) {
	n := binary.PutUvarint(e.buf[:], v)
	e.w.Write(e.buf[:n])
}

func (e *encoder) varint(v int64) {
	n := binary.PutVarint(e.buf[:], v)
	e.w.Write(e.buf[:n])
}

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.w.WriteString(s)
}

func encodeHeader(e *encoder, h Header, count int) {
	e.w.WriteString(magic)
	e.varint(h.Created)
	e.str(h.PolicyName)
	e.str(h.PolicyDigest)
	e.uvarint(uint64(count))
}

func (e *encoder) entry(x *Entry) {
	shared := 0
	for shared < len(x.Path) && shared < len(e.prev) && x.Path[shared] == e.prev[shared] {
		shared++
	}
	e.uvarint(uint64(shared))
	e.str(x.Path[shared:])
	e.prev = x.Path
	e.uvarint(uint64(x.Attrs))
	e.w.WriteByte(x.Flags)
	e.w.WriteByte(x.Type)
	x.Attrs.Each(func(a policy.Attr) {
		switch a {
		case policy.AttrMode:
			e.uvarint(uint64(x.Mode))
		case policy.AttrUID:
			e.uvarint(uint64(x.UID))
		case policy.AttrGID:
			e.uvarint(uint64(x.GID))
		case policy.AttrSize:
			e.varint(x.Size)
		case policy.AttrMTime:
			e.varint(x.MTime)
		case policy.AttrCTime:
			e.varint(x.CTime)
		case policy.AttrInode:
			e.uvarint(x.Inode)
		case policy.AttrNlink:
			e.uvarint(x.Nlink)
		case policy.AttrTarget:
			e.str(x.Ext().Target)
		case policy.AttrXattrs:
			e.str(x.Ext().Xattrs)
		case policy.AttrACL:
			e.str(x.Ext().ACL)
		case policy.AttrSELinux:
			e.str(x.Ext().SELinux)
		case policy.AttrSHA256:
			e.w.Write(x.SHA256[:])
		case policy.AttrBLAKE3:
			e.w.Write(x.Ext().BLAKE3[:])
		case policy.AttrXXH3:
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], x.XXH3)
			e.w.Write(b[:])
		}
	})
	if x.Flags&FlagError != 0 {
		e.str(x.Ext().Err)
	}
}

// encode writes header and entries (not the MAC) to w.
func encode(w io.Writer, h Header, entries []Entry) error {
	e := &encoder{w: bufio.NewWriterSize(w, 256<<10)}
	encodeHeader(e, h, len(entries))
	for i := range entries {
		e.entry(&entries[i])
	}
	return e.w.Flush()
}

type decoder struct {
	b    []byte
	off  int
	prev string
	err  error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrCorrupt, what, d.off)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("length past end")
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) str() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) byte1() byte {
	b := d.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// decodeBody decodes everything before the MAC.
func decodeBody(b []byte) (Header, []Entry, error) {
	var h Header
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return h, nil, fmt.Errorf("%w: not a mamori baseline (bad magic)", ErrCorrupt)
	}
	d := &decoder{b: b, off: len(magic)}
	h.Created = d.varint()
	h.PolicyName = d.str()
	h.PolicyDigest = d.str()
	n := d.uvarint()
	// Each entry takes at least 5 bytes: refuse counts the data cannot hold
	// before allocating for them.
	if d.err == nil && n > uint64(len(b)-d.off)/5 {
		d.fail("entry count larger than the file")
	}
	if d.err != nil {
		return h, nil, d.err
	}
	entries := make([]Entry, n)
	for i := range entries {
		d.entry(&entries[i])
		if d.err != nil {
			return h, nil, d.err
		}
		if i > 0 && entries[i].Path <= entries[i-1].Path {
			d.fail("entries not sorted")
			return h, nil, d.err
		}
	}
	if d.off != len(b) {
		d.fail("trailing bytes")
		return h, nil, d.err
	}
	return h, entries, nil
}

func (d *decoder) entry(x *Entry) {
	shared := d.uvarint()
	if shared > uint64(len(d.prev)) {
		d.fail("bad path prefix")
		return
	}
	x.Path = d.prev[:shared] + d.str()
	d.prev = x.Path
	x.Attrs = policy.Attr(d.uvarint())
	x.Flags = d.byte1()
	x.Type = d.byte1()
	x.Attrs.Each(func(a policy.Attr) {
		switch a {
		case policy.AttrType:
		case policy.AttrMode:
			x.Mode = uint32(d.uvarint())
		case policy.AttrUID:
			x.UID = uint32(d.uvarint())
		case policy.AttrGID:
			x.GID = uint32(d.uvarint())
		case policy.AttrSize:
			x.Size = d.varint()
		case policy.AttrMTime:
			x.MTime = d.varint()
		case policy.AttrCTime:
			x.CTime = d.varint()
		case policy.AttrInode:
			x.Inode = d.uvarint()
		case policy.AttrNlink:
			x.Nlink = d.uvarint()
		case policy.AttrTarget:
			if v := d.str(); v != "" {
				x.Mut().Target = v
			}
		case policy.AttrXattrs:
			if v := d.str(); v != "" {
				x.Mut().Xattrs = v
			}
		case policy.AttrACL:
			if v := d.str(); v != "" {
				x.Mut().ACL = v
			}
		case policy.AttrSELinux:
			if v := d.str(); v != "" {
				x.Mut().SELinux = v
			}
		case policy.AttrSHA256:
			copy(x.SHA256[:], d.bytes(32))
		case policy.AttrBLAKE3:
			if b := d.bytes(32); b != nil && [32]byte(b) != ([32]byte{}) {
				copy(x.Mut().BLAKE3[:], b)
			}
		case policy.AttrXXH3:
			if b := d.bytes(8); b != nil {
				x.XXH3 = binary.LittleEndian.Uint64(b)
			}
		default:
			d.fail("unknown attribute bit")
		}
	})
	if x.Flags&FlagError != 0 {
		if v := d.str(); v != "" {
			x.Mut().Err = v
		}
	}
}
