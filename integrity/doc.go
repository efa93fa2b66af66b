// Package integrity is mamori's file integrity monitoring engine: it builds
// a tamper-evident baseline of the files a policy selects (policy/,
// baseline/, walk/), checks the filesystem against it reporting every added,
// removed and changed object with old → new per attribute, accepts changes
// into the baseline on request (audited), and watches for changes in real
// time (watch/). It is a library: the CLI and the agent module drive it.
package integrity
