// Package policy is the integrity-monitoring policy: which paths to watch,
// how deep, which files to include or exclude, which attributes to record,
// how severe a change is, and which changes are expected (logs, caches).
// Policies are YAML files decoded strictly; errors name the file and line.
//
// A policy file:
//
//	name: web
//	version: 1
//	defaults:                      # inherited by every rule that does not say
//	  attributes: [meta, sha256]   # meta = type mode uid gid size mtime ctime inode nlink target
//	  severity: medium             # info, low, medium, high, critical
//	  cross_mounts: false          # do not descend into other filesystems
//	  exclude: ["*.swp"]
//	rules:
//	  - path: /srv/www             # absolute; a more specific rule owns its subtree
//	    depth: 3                   # levels below path; -1 (default) unlimited
//	    include: ["**/*.php"]      # record only matching objects (directories are still descended)
//	    exclude: ["/srv/www/cache"] # "/..." full path, "a/b" relative to the rule, "x" base name
//	    attributes: [meta, sha256, blake3, xattrs, acl, selinux]
//	    severity: high
//	    always_rehash: true        # hash even under check --trust-metadata
//	  - path: /srv/www/logs
//	    expected_changes: [content, added, removed] # logs grow and rotate
//
// Attributes: type, mode, uid, gid, size, mtime, ctime, inode, nlink,
// target, xattrs, acl, selinux, sha256, blake3, xxh3, and the groups meta,
// hashes, content (size, times, hashes), perms (mode, owner, ACL, xattrs,
// SELinux) and all. expected_changes takes the same names plus added and
// removed.
package policy
