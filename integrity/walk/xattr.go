package walk

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

const (
	xattrSELinux    = "security.selinux"
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

// readXattrs fills the xattr, ACL and SELinux attributes of e. Filesystems
// without xattr support simply have none.
func readXattrs(full string, want policy.Attr, e *baseline.Entry) error {
	names, err := listXattrs(full)
	if err != nil {
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil
		}
		return fmt.Errorf("listing xattrs: %w", err)
	}
	var plain, acls []string
	for _, n := range names {
		isACL := n == xattrACLAccess || n == xattrACLDefault
		switch {
		case n == xattrSELinux && !want.Has(policy.AttrSELinux),
			isACL && !want.Has(policy.AttrACL),
			n != xattrSELinux && !isACL && !want.Has(policy.AttrXattrs):
			continue
		}
		v, err := getXattr(full, n)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading xattr %s: %w", n, err)
		}
		switch {
		case n == xattrSELinux:
			e.Mut().SELinux = strings.TrimRight(string(v), "\x00")
		case isACL:
			acls = append(acls, strings.TrimPrefix(n, "system.posix_acl_")+":"+aclText(v))
		default:
			plain = append(plain, n+"="+xattrValue(v))
		}
	}
	sort.Strings(plain)
	sort.Strings(acls)
	if len(plain) > 0 {
		e.Mut().Xattrs = strings.Join(plain, "; ")
	}
	if len(acls) > 0 {
		e.Mut().ACL = strings.Join(acls, " ")
	}
	return nil
}

func listXattrs(full string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(full, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
}

func getXattr(full, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(full, name, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*8)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func xattrValue(v []byte) string {
	if utf8.Valid(v) && !bytes.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(string(v))
	}
	return "0x" + hex.EncodeToString(v)
}

// aclText renders the kernel's POSIX ACL xattr (version 2: tag, perm, id per
// 8-byte entry) the way getfacl spells entries.
func aclText(v []byte) string {
	if len(v) < 4 || binary.LittleEndian.Uint32(v) != 2 || (len(v)-4)%8 != 0 {
		return "0x" + hex.EncodeToString(v)
	}
	var parts []string
	for b := v[4:]; len(b) >= 8; b = b[8:] {
		tag, perm, id := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])
		p := []byte("---")
		if perm&4 != 0 {
			p[0] = 'r'
		}
		if perm&2 != 0 {
			p[1] = 'w'
		}
		if perm&1 != 0 {
			p[2] = 'x'
		}
		var s string
		switch tag {
		case 0x01:
			s = "user::"
		case 0x02:
			s = "user:" + strconv.FormatUint(uint64(id), 10) + ":"
		case 0x04:
			s = "group::"
		case 0x08:
			s = "group:" + strconv.FormatUint(uint64(id), 10) + ":"
		case 0x10:
			s = "mask::"
		case 0x20:
			s = "other::"
		default:
			s = "tag" + strconv.Itoa(int(tag)) + ":"
		}
		parts = append(parts, s+string(p))
	}
	return strings.Join(parts, ",")
}
