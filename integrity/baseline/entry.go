package baseline

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/mamori-sec/mamori/integrity/policy"
)

// File types, one byte each, as ls -l shows them.
const (
	TypeFile    = 'f'
	TypeDir     = 'd'
	TypeSymlink = 'l'
	TypeChar    = 'c'
	TypeBlock   = 'b'
	TypeFIFO    = 'p'
	TypeSocket  = 's'
)

// Entry flags.
const (
	// FlagError: the item could not be fully recorded (permission denied,
	// vanished, changing while hashed); Err says why and the attributes
	// that could not be read are absent from Attrs.
	FlagError uint8 = 1 << iota
)

// Entry is the recorded state of one filesystem object. Only the attributes
// in Attrs are meaningful. The common attributes are inline; the rare ones
// live in X, allocated only when set, so a million entries stay small.
type Entry struct {
	Path   string // logical path; any bytes (names need not be UTF-8)
	SHA256 [32]byte
	Size   int64
	MTime  int64 // ns since the epoch
	CTime  int64
	Inode  uint64
	Nlink  uint64
	XXH3   uint64
	Attrs  policy.Attr
	Mode   uint32 // permission bits with setuid, setgid, sticky
	UID    uint32
	GID    uint32
	Flags  uint8
	Type   byte
	X      *Extra
}

// Extra holds the attributes most files do not have.
type Extra struct {
	Target  string // symlink target
	Xattrs  string // canonical "name=value" list, without ACL and SELinux
	ACL     string // POSIX ACLs in text form
	SELinux string
	Err     string
	BLAKE3  [32]byte
}

var noExtra Extra

// Ext returns the rare attributes for reading (zero values when unset).
func (e *Entry) Ext() *Extra {
	if e.X == nil {
		return &noExtra
	}
	return e.X
}

// Mut returns the rare attributes for writing, allocating them.
func (e *Entry) Mut() *Extra {
	if e.X == nil {
		e.X = &Extra{}
	}
	return e.X
}

// Value renders one attribute of e for reports and events.
func (e *Entry) Value(a policy.Attr) string {
	switch a {
	case policy.AttrType:
		return TypeName(e.Type)
	case policy.AttrMode:
		return fmt.Sprintf("%04o", e.Mode)
	case policy.AttrUID:
		return strconv.FormatUint(uint64(e.UID), 10)
	case policy.AttrGID:
		return strconv.FormatUint(uint64(e.GID), 10)
	case policy.AttrSize:
		return strconv.FormatInt(e.Size, 10)
	case policy.AttrMTime:
		return time.Unix(0, e.MTime).UTC().Format(time.RFC3339Nano)
	case policy.AttrCTime:
		return time.Unix(0, e.CTime).UTC().Format(time.RFC3339Nano)
	case policy.AttrInode:
		return strconv.FormatUint(e.Inode, 10)
	case policy.AttrNlink:
		return strconv.FormatUint(e.Nlink, 10)
	case policy.AttrTarget:
		return e.Ext().Target
	case policy.AttrXattrs:
		return e.Ext().Xattrs
	case policy.AttrACL:
		return e.Ext().ACL
	case policy.AttrSELinux:
		return e.Ext().SELinux
	case policy.AttrSHA256:
		return hex.EncodeToString(e.SHA256[:])
	case policy.AttrBLAKE3:
		return hex.EncodeToString(e.Ext().BLAKE3[:])
	case policy.AttrXXH3:
		return strconv.FormatUint(e.XXH3, 16)
	}
	return ""
}

// Equal reports whether attribute a is the same in e and o.
func (e *Entry) Equal(o *Entry, a policy.Attr) bool {
	switch a {
	case policy.AttrType:
		return e.Type == o.Type
	case policy.AttrMode:
		return e.Mode == o.Mode
	case policy.AttrUID:
		return e.UID == o.UID
	case policy.AttrGID:
		return e.GID == o.GID
	case policy.AttrSize:
		return e.Size == o.Size
	case policy.AttrMTime:
		return e.MTime == o.MTime
	case policy.AttrCTime:
		return e.CTime == o.CTime
	case policy.AttrInode:
		return e.Inode == o.Inode
	case policy.AttrNlink:
		return e.Nlink == o.Nlink
	case policy.AttrTarget:
		return e.Ext().Target == o.Ext().Target
	case policy.AttrXattrs:
		return e.Ext().Xattrs == o.Ext().Xattrs
	case policy.AttrACL:
		return e.Ext().ACL == o.Ext().ACL
	case policy.AttrSELinux:
		return e.Ext().SELinux == o.Ext().SELinux
	case policy.AttrSHA256:
		return e.SHA256 == o.SHA256
	case policy.AttrBLAKE3:
		return e.Ext().BLAKE3 == o.Ext().BLAKE3
	case policy.AttrXXH3:
		return e.XXH3 == o.XXH3
	}
	return true
}

// TypeName spells a type byte out.
func TypeName(t byte) string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeChar:
		return "char-device"
	case TypeBlock:
		return "block-device"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return "unknown"
}
