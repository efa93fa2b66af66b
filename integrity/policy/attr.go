package policy

import (
	"fmt"
	"math/bits"
	"strings"
)

// Attr is one file attribute a rule can watch. Attrs are a bit set so the
// walker can ask "is sha256 wanted here" with one AND on the hot path.
type Attr uint32

const (
	AttrType Attr = 1 << iota
	AttrMode
	AttrUID
	AttrGID
	AttrSize
	AttrMTime
	AttrCTime
	AttrInode
	AttrNlink
	AttrTarget
	AttrXattrs
	AttrACL
	AttrSELinux
	AttrSHA256
	AttrBLAKE3
	AttrXXH3
	attrEnd
)

// Names of the attributes as they appear in policies, events and reports.
var attrNames = [...]string{"type", "mode", "uid", "gid", "size", "mtime", "ctime", "inode", "nlink", "target", "xattrs", "acl", "selinux", "sha256", "blake3", "xxh3"}

// Groups usable in policies besides single names.
var attrGroups = map[string]Attr{
	// "meta" is what AIDE's p+i+n+u+g+s+m+c covers.
	"meta":    AttrType | AttrMode | AttrUID | AttrGID | AttrSize | AttrMTime | AttrCTime | AttrInode | AttrNlink | AttrTarget,
	"hashes":  AttrSHA256 | AttrBLAKE3 | AttrXXH3,
	"content": AttrSize | AttrMTime | AttrCTime | AttrSHA256 | AttrBLAKE3 | AttrXXH3,
	"perms":   AttrMode | AttrUID | AttrGID | AttrACL | AttrXattrs | AttrSELinux,
	"all":     attrEnd - 1,
}

// AttrHashes are the content digests; they need the file opened and read.
const AttrHashes = AttrSHA256 | AttrBLAKE3 | AttrXXH3

// AttrExtended need extra system calls per file (listxattr/getxattr).
const AttrExtended = AttrXattrs | AttrACL | AttrSELinux

// DefaultAttrs is what a path watched without a policy gets: every
// attribute a change of which means tampering, with sha256 for content.
const DefaultAttrs = AttrType | AttrMode | AttrUID | AttrGID | AttrSize | AttrMTime | AttrCTime | AttrInode | AttrNlink | AttrTarget | AttrXattrs | AttrACL | AttrSELinux | AttrSHA256

// Has reports whether every attribute of b is in a.
func (a Attr) Has(b Attr) bool { return a&b == b }

// Any reports whether some attribute of b is in a.
func (a Attr) Any(b Attr) bool { return a&b != 0 }

// Each calls fn for every single attribute in a, in the canonical order.
func (a Attr) Each(fn func(Attr)) {
	for a != 0 {
		b := Attr(1) << bits.TrailingZeros32(uint32(a))
		fn(b)
		a &^= b
	}
}

func (a Attr) String() string {
	var parts []string
	a.Each(func(b Attr) { parts = append(parts, attrNames[bits.TrailingZeros32(uint32(b))]) })
	return strings.Join(parts, ",")
}

// ParseAttr parses one attribute or group name.
func ParseAttr(s string) (Attr, error) {
	if g, ok := attrGroups[s]; ok {
		return g, nil
	}
	for i, n := range attrNames {
		if n == s {
			return Attr(1) << i, nil
		}
	}
	return 0, fmt.Errorf("unknown attribute %q (want one of %s, or a group: meta, hashes, content, perms, all)", s, strings.Join(attrNames[:], ", "))
}
