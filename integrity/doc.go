// Package integrity is mamori's file integrity monitoring engine: it builds
// a tamper-evident baseline of the files a policy selects (policy/,
// baseline/, walk/), checks the filesystem against it reporting every added,
// removed and changed object with old → new per attribute, accepts changes
// into the baseline on request (audited), and watches for changes in real
// time (watch/). It is a library: the CLI and the agent module drive it.
//
// # Threat model of the baseline
//
// A baseline is sealed with HMAC-SHA256 under a host key, so a baseline
// that was modified, truncated or re-sealed with another key is refused
// (never silently re-baselined). The seal is only as strong as the key is
// apart from the baseline:
//
//   - The key is kept apart from the baselines: the CLI uses
//     $MAMORI_INTEGRITY_KEY, else /etc/mamori/integrity.key as root
//     (~/.config/mamori/integrity.key otherwise); the agent keeps it in its
//     data directory while its baseline lives in a subdirectory. Being
//     able to write the baseline's directory (a backup restore, a
//     misconfigured service account, a shared volume) is therefore not
//     enough to re-seal a forged baseline: a key planted beside the
//     baseline is never used by default.
//   - The key file is created 0600 on first init and refused when it is
//     not a regular file, not owned by the user running mamori, readable
//     or writable by group or others, or in a directory others can write.
//   - Not covered: an attacker with root on the host can read the key and
//     forge a baseline, or stop mamori. Against that, keep the baseline's
//     digest or a copy off the host (the agent reports baseline events to
//     the manager) and treat the host's own verdict as advisory.
//   - A file rewritten with its old content and times restored is
//     detected by rehashing; --trust-metadata skips the rehash when size,
//     mtime, ctime and inode are unchanged, which a raw-device writer can
//     defeat.
package integrity
