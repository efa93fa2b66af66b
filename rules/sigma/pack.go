// Package sigma embeds mamori's built-in log-inspection rule pack: our own
// Sigma rules (and correlation rules) for SSH brute force, password
// spraying, success after failures, user enumeration, root logins, account
// and sudoers changes, sudo failures, and web scanners and injection
// attempts. The files are plain Sigma YAML so any Sigma tool can read them;
// the only extension is the optional "mamori: response:" section.
package sigma

import "embed"

// FS holds the rule files (*.yml).
//
//go:embed *.yml
var FS embed.FS
